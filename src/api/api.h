/* The API: handlers that parse and validate JSON, make one store call and
 * render the result. The route table here is the single list of endpoints. */
#ifndef RF_API_H
#define RF_API_H

#include "db/db.h"
#include "http/http.h"

struct rf_app {
    struct rf_db *db;
};

extern const struct rf_route rf_routes[];
extern const size_t rf_nroutes;

/* For rf_server_opts.authenticate. */
void rf_api_authenticate(struct rf_req *r, const char *token);

/* Handlers, one per route, in src/api. */
void rf_api_healthz(struct rf_req *r);
void rf_api_readyz(struct rf_req *r);
void rf_api_user_create(struct rf_req *r);
void rf_api_user_get(struct rf_req *r);
void rf_api_user_list(struct rf_req *r);
void rf_api_user_patch(struct rf_req *r);
void rf_api_event_create(struct rf_req *r);
void rf_api_event_get(struct rf_req *r);
void rf_api_event_list(struct rf_req *r);
void rf_api_identity_create(struct rf_req *r);
void rf_api_identity_get(struct rf_req *r);
void rf_api_key_create(struct rf_req *r);
void rf_api_key_get(struct rf_req *r);
void rf_api_key_patch(struct rf_req *r);
void rf_api_key_verify(struct rf_req *r);

#endif
