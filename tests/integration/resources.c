/* Resources: the quota counter and simultaneous deletes. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/rules.h"
#include "core/util.h"
#include "itest.h"

/* One free slot, 32 simultaneous creates → exactly one 201; the quota is
 * a counter in the create transaction. */
void t_quota(void)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[RACE_IDEM];
    char bodies[RACE_IDEM][96], path[128] = "";
    json_t *j = NULL;
    EXPECT(env_up_with(&e, MULTI, "--resource-quota", "5", "--provision-delay-ms", "50") == 0,
           "env_up");
    for (int i = 0; i < 4; i++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"type\":\"redis\",\"name\":\"pre%d\"}", i);
        struct reqspec c = {"POST", "/v1/resources", e.key, body, NULL, 0};
        json_decref(j);
        j = NULL;
        EXPECT(http1(&e, &c, &j) == 201, "pre-create %d", i);
        snprintf(path, sizeof(path), "/v1/resources/%s", jstr(j, "resource", "id"));
    }
    for (int i = 0; i < RACE_IDEM; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "{\"type\":\"redis\",\"name\":\"q%d\"}", i);
        q[i] = (struct reqspec){"POST", "/v1/resources", e.key, bodies[i], NULL, i};
    }
    EXPECT(burst_fire(&e, q, RACE_IDEM, &b) == 0, "burst");
    EXPECT_BURST(&b, "no-5xx; status 201=1; status 409=N-1");
    int nq = count_with(&b, 409, "quota_exceeded");
    EXPECT(nq == RACE_IDEM - 1, "want %d x 409 quota_exceeded, got %d", RACE_IDEM - 1, nq);
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL) == 5, "want 5 resources");
    struct reqspec d = {"DELETE", path, e.key, NULL, NULL, 0};
    EXPECT(http1(&e, &d, NULL) == 204, "delete: 204");
    EXPECT(http1(&e, &d, NULL) == 404, "delete again: 404");
    struct reqspec c = {
        "POST", "/v1/resources", e.key, "{\"type\":\"redis\",\"name\":\"after\"}", NULL, 0};
    EXPECT(http1(&e, &c, NULL) == 201, "a freed slot can be used");
    EXPECT(http1(&e, &c, NULL) == 201, "replayed within the fingerprint window");
    EXPECT(db_count(&e, "SELECT COUNT(*) FROM resources", NULL, NULL) == 5, "still 5");
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}

/* N simultaneous DELETEs of one resource → one 204, N-1 × 404, and the
 * quota counter moved back exactly once. */
void t_race_resource_delete(void)
{
    struct env e;
    struct burst b = {0};
    char path[128];
    json_t *j = NULL;
    EXPECT(env_up_with(&e, MULTI, "--provision-delay-ms", "0") == 0, "env_up");
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"type\":\"redis\",\"name\":\"del%d\"}", round);
        struct reqspec c = {"POST", "/v1/resources", e.key, body, NULL, 0};
        json_decref(j);
        j = NULL;
        EXPECT(http1(&e, &c, &j) == 201, "create");
        snprintf(path, sizeof(path), "/v1/resources/%s", jstr(j, "resource", "id"));
        struct reqspec one = {"DELETE", path, e.key, NULL, NULL, 0};
        EXPECT_SAME(&e, &one, RACE_SMALL, &b, "no-5xx; status 204=1; status 404=N-1");
        EXPECT(db_count(&e,
                        "SELECT (SELECT n FROM resource_counts) - (SELECT COUNT(*) FROM resources)",
                        NULL, NULL) == 0,
               "quota counter out of step with the rows");
    }
out:
    json_decref(j);
    burst_free(&b);
    env_down(&e);
}
