/* Events: N creates of one name get N slugs (seed 000); deletes raced
 * with creates of the deleted slug's name. */
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

#define RACE_EVENTS 48

/* Seed 000: N simultaneous creates of one name → N distinct slugs. */
void race_event_create(int nsrv, int rounds)
{
    struct env e;
    struct burst b = {0};
    char name[64], body[128], slugs[RACE_EVENTS][72];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < rounds; round++) {
        fresh(name, sizeof(name), "Launch Party ", "");
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
        struct reqspec one = {"POST", "/v1/events", e.key, body, NULL, 0};
        EXPECT_SAME(&e, &one, RACE_EVENTS, &b, "no-5xx; status 201=N; distinct .event.slug=N");
        for (int i = 0; i < RACE_EVENTS; i++) {
            json_t *j = res_json(&b, (size_t)i);
            snprintf(slugs[i], sizeof(slugs[i]), "%s", jstr(j, "event", "slug"));
            json_decref(j);
        }
        long rows = db_count(&e, "SELECT COUNT(*) FROM events WHERE name = ?", name, NULL);
        EXPECT(rows == RACE_EVENTS, "want %d rows, found %ld", RACE_EVENTS, rows);
        long dslugs =
            db_count(&e, "SELECT COUNT(DISTINCT slug) FROM events WHERE name = ?", name, NULL);
        EXPECT(dslugs == RACE_EVENTS, "want %d distinct slugs in the database, found %ld",
               RACE_EVENTS, dslugs);
    }
    /* "<name> 2" collides with a suffix already handed out: still 201, and
     * a slug nobody holds; GET by slug finds each. */
    {
        char body2[160], path[128];
        json_t *j = NULL;
        snprintf(body2, sizeof(body2), "{\"name\":\"%s 2\"}", name);
        struct reqspec c = {"POST", "/v1/events", e.key, body2, NULL, 0};
        int st = http1(&e, &c, &j);
        const char *slug = jstr(j, "event", "slug");
        int fresh = slug != NULL;
        for (int i = 0; fresh && i < RACE_EVENTS; i++)
            fresh = strcmp(slugs[i], slug) != 0;
        if (slug)
            snprintf(path, sizeof(path), "/v1/events/%s", slug);
        json_decref(j);
        EXPECT(st == 201 && fresh, "'<name> 2': status %d, slug must be fresh", st);
        struct reqspec g = {"GET", path, e.key, NULL, NULL, 1};
        EXPECT(http1(&e, &g, NULL) == 200, "GET by slug");
        snprintf(path, sizeof(path), "/v1/events/%s", slugs[RACE_EVENTS - 1]);
        struct reqspec g2 = {"GET", path, e.key2, NULL, NULL, 0};
        EXPECT(http1(&e, &g2, NULL) == 404, "another workspace's event must be 404");
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_event_create_1srv(void)
{
    race_event_create(1, RACE_ROUNDS);
}
void t_race_event_create_2srv(void)
{
    race_event_create(MULTI, RACE_ROUNDS);
}

/* N simultaneous DELETEs of one event slug, fired with N creates of a name
 * whose own slug is that one ("Launch 2" after "launch-2" was handed out as
 * a suffix): one 204, N-1 × 404, N × 201 with N distinct slugs, none the
 * deleted one (its tombstone keeps it), and a create after the delete does
 * not get it either. */
#define RACE_EDEL 16

static void race_event_delete(int nsrv)
{
    struct env e;
    struct burst b = {0};
    struct reqspec q[2 * RACE_EDEL];
    char slug[96], dpath[160], name[64], body[128], body2[128];
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int round = 0; round < 5; round++) {
        fresh(name, sizeof(name), "Gala ", "");
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
        snprintf(body2, sizeof(body2), "{\"name\":\"%s 2\"}", name);
        EXPECT(create1(&e, "/v1/events", body, "event", "slug", slug, sizeof(slug)) == 0, "1st");
        EXPECT(create1(&e, "/v1/events", body, "event", "slug", slug, sizeof(slug)) == 0, "2nd");
        EXPECT(strlen(slug) > 2 && !strcmp(slug + strlen(slug) - 2, "-2"), "slug %s", slug);
        snprintf(dpath, sizeof(dpath), "/v1/events/%s", slug);
        for (int i = 0; i < 2 * RACE_EDEL; i++)
            q[i] = i % 2 ? (struct reqspec){"DELETE", dpath, e.key, NULL, NULL, i}
                         : (struct reqspec){"POST", "/v1/events", e.key, body2, NULL, i};
        burst_free(&b);
        EXPECT(burst_fire(&e, q, 2 * RACE_EDEL, &b) == 0, "burst");
        EXPECT_BURST(&b, "no-5xx; status 204=1; status 404=%d; status 201=%d", RACE_EDEL - 1,
                     RACE_EDEL);
        char slugs[RACE_EDEL + 1][96];
        int ns = 0;
        for (int i = 0; i < 2 * RACE_EDEL; i += 2) {
            json_t *j = res_json(&b, (size_t)i);
            const char *s = jstr(j, "event", "slug");
            snprintf(slugs[ns++], sizeof(slugs[0]), "%s", s ? s : "?");
            json_decref(j);
        }
        EXPECT(create1(&e, "/v1/events", body2, "event", "slug", slugs[ns], sizeof(slugs[0])) == 0,
               "after");
        ns++;
        for (int i = 0; i < ns; i++) {
            EXPECT(strcmp(slugs[i], slug) != 0, "a new event got the deleted slug %s", slug);
            for (int k = i + 1; k < ns; k++)
                EXPECT(strcmp(slugs[i], slugs[k]) != 0, "slug %s twice", slugs[i]);
        }
        struct reqspec g = {"GET", dpath, e.key, NULL, NULL, 0};
        EXPECT(http1(&e, &g, NULL) == 404, "GET of a deleted event");
        EXPECT(db_count(&e, "SELECT COUNT(*) FROM events WHERE slug = ? AND deleted_at IS NOT NULL",
                        slug, NULL) == 1,
               "want one tombstone for %s", slug);
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_event_delete_1srv(void)
{
    race_event_delete(1);
}
void t_race_event_delete_multi(void)
{
    race_event_delete(MULTI);
}
