/* PostgreSQL driver (libpq): placeholder until the driver lands. */
#include "db/db.h"

static int pg_open(const char *url, int nreaders, struct rf_db **out, struct rf_db_error *e)
{
    (void)url;
    (void)nreaders;
    *out = NULL;
    return rf_db_fail(e, RF_DB_ERROR, "PostgreSQL support is not built yet");
}

const struct rf_db_driver rf_db_pg = {
    .name = "postgres",
    .open = pg_open,
};
