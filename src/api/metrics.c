/* GET /metrics: the Prometheus text exposition of core/metrics. */
#include "api/api.h"

void rf_api_metrics(struct rf_req *r)
{
    rf_reply_problem(r, 404, "not_found", "Metrics are not built yet.");
}
