/* GET /openapi.json: the OpenAPI 3.1 document of docs/openapi.json. */
#include "api/api.h"
#include "core/problems.h"

/* Written by scripts/embed.py from docs/openapi.json (mk/openapi.mk). */
static const unsigned char doc[] = {
#include "openapi_doc.inc"
};

/* The document and core/problems.h list the same problems with the same
 * statuses, or this file does not compile. RF_DOC_PROBLEMS is written from
 * the document by scripts/gen-problems-doc.py (mk/openapi.mk), so the
 * comparison is the compiler's, over the map as it compiles, rather than a
 * script's reading of C. Which error means what:
 *   'map_status_of_<code>' undeclared: documented, no row in the map;
 *   'documented_<code>_<status>' undeclared: a row the document lacks
 *     (that code, or that status for it);
 *   the static assertion below: documented with another status. */
#include "problems_doc.h"

#define XX(e, status, code, title, label) map_status_of_##code = status,
enum { RF_PROBLEM_MAP(XX) };
#undef XX
#define XX(code, status) documented_##code##_##status,
enum { RF_DOC_PROBLEMS(XX) };
#undef XX
#define XX(code, status)                                                                           \
    _Static_assert(map_status_of_##code == status,                                                 \
                   "docs/openapi.json gives " #code " status " #status                             \
                   "; core/problems.h does not");
RF_DOC_PROBLEMS(XX)
#undef XX
#define XX(e, status, code, title, label)                                                          \
    _Static_assert(documented_##code##_##status >= 0, "core/problems.h row " #code);
RF_PROBLEM_MAP(XX)
#undef XX

void rf_api_openapi(struct rf_req *r)
{
    /* Static bytes, not rf_reply_json: the document is served exactly as
     * built, without a parse and re-serialisation per request. */
    rf_reply_text(r, 200, "application/json", (const char *)doc, sizeof(doc));
}
