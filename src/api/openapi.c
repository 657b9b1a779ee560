/* GET /openapi.json: the OpenAPI 3.1 document of docs/openapi.json. */
#include "api/api.h"

/* Written by scripts/embed.py from docs/openapi.json (mk/openapi.mk). */
static const unsigned char doc[] = {
#include "openapi_doc.inc"
};

void rf_api_openapi(struct rf_req *r)
{
    /* Static bytes, not rf_reply_json: the document is served exactly as
     * built, without a parse and re-serialisation per request. */
    rf_reply_text(r, 200, "application/json", (const char *)doc, sizeof(doc));
}
