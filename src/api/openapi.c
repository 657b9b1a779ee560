/* GET /openapi.json: the OpenAPI 3.1 document of docs/openapi.json. */
#include "api/api.h"

void rf_api_openapi(struct rf_req *r)
{
    rf_reply_problem(r, 404, "not_found", "The OpenAPI document is not built yet.");
}
