/* Cursor lists paged while writers create and delete rows. */
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

/* A cursor list read page by page while, in the same bursts as each page,
 * writers create new rows and delete others (rows made before the paging
 * and rows made during it). Keyset pagination must show every row that
 * lived throughout exactly once and no row twice. For users, identities,
 * events, and the keys of one identity (where "delete" is a PATCH that
 * detaches the key). */
#define LIST_STABLE 30
#define LIST_DOOMED 20
#define LIST_WRITERS 6
#define LIST_MAX 400

struct lrow {
    char id[64], del[160]; /* the list's id; the path that removes it */
};

static const char *const kind_path[] = {"/v1/users", "/v1/identities", "/v1/events", "/v1/keys"};

/* A row from its create's answer: the id its list shows, the path that
 * removes it. */
static int row_of(const struct burst *b, size_t i, int kind, struct lrow *row)
{
    json_t *j = res_json(b, i);
    const char *id = kind == 0   ? jstr(j, "user", "id")
                     : kind == 1 ? jstr(j, "identity", "id")
                     : kind == 2 ? jstr(j, "event", "id")
                                 : jstr(j, "keyId", NULL);
    const char *dk = kind == 1   ? jstr(j, "identity", "externalId")
                     : kind == 2 ? jstr(j, "event", "slug")
                                 : id;
    int ok = b->res[i].http.status == 201 && id && dk;
    if (ok) {
        snprintf(row->id, sizeof(row->id), "%s", id);
        snprintf(row->del, sizeof(row->del), "%s/%s", kind_path[kind], dk);
    }
    json_decref(j);
    return ok;
}

/* The create body of a row of kind, told apart by tag. */
static void body_of(int kind, char *buf, size_t len, const char *tag)
{
    if (kind == 0)
        snprintf(buf, len, "{\"email\":\"%s@example.com\"}", tag);
    else if (kind == 1)
        snprintf(buf, len, "{\"externalId\":\"%s\"}", tag);
    else if (kind == 2)
        snprintf(buf, len, "{\"name\":\"%s\"}", tag);
    else
        snprintf(buf, len, "{\"externalId\":\"lister\"}");
}

static int list_create(struct env *e, int kind, int n, int tag, struct lrow *rows, int srv0)
{
    struct reqspec q[LIST_MAX];
    char bodies[LIST_MAX][128];
    struct burst b = {0};
    unsigned salt = rf_rand_below(1u << 30);
    for (int i = 0; i < n; i++) {
        char t[48];
        snprintf(t, sizeof(t), "l%d-%d-%u", tag, i, salt);
        body_of(kind, bodies[i], sizeof(bodies[i]), t);
        q[i] = (struct reqspec){"POST", kind_path[kind], e->key, bodies[i], NULL, srv0 + i};
    }
    int made = 0;
    if (burst_fire(e, q, (size_t)n, &b) == 0)
        for (int i = 0; i < n; i++)
            made += row_of(&b, (size_t)i, kind, &rows[made]);
    burst_free(&b);
    return made;
}

static void race_list_cursor(int nsrv)
{
    struct env e;
    struct burst b = {0};
    static struct lrow stable[LIST_STABLE], pool[LIST_MAX];
    static char seen[LIST_MAX * 2][64];
    static const char *const lists[] = {"/v1/users", "/v1/identities", "/v1/events",
                                        "/v1/keys?externalId=lister"};
    EXPECT(env_up(&e, nsrv) == 0, "env_up");
    for (int kind = 0; kind < 4; kind++) {
        int npool = 0, next_del = 0, nseen = 0, pages = 0, n5xx = 0;
        char cursor[600] = "", lpath[800];
        EXPECT(list_create(&e, kind, LIST_STABLE, 0, stable, 0) == LIST_STABLE, "stable rows");
        npool = list_create(&e, kind, LIST_DOOMED, 1, pool, 1);
        EXPECT(npool == LIST_DOOMED, "doomed rows");
        for (;;) {
            struct reqspec q[1 + LIST_WRITERS];
            char wbodies[LIST_WRITERS][128];
            unsigned salt = rf_rand_below(1u << 30);
            snprintf(lpath, sizeof(lpath), "%s%slimit=7%s%s", lists[kind], kind == 3 ? "&" : "?",
                     cursor[0] ? "&cursor=" : "", cursor);
            q[0] = (struct reqspec){"GET", lpath, e.key, NULL, NULL, pages};
            int nq = 1;
            for (int w = 0; w < LIST_WRITERS; w++) {
                if (w % 2 && next_del < npool) {
                    /* A key leaves the identity's list by being detached. */
                    q[nq] =
                        kind == 3
                            ? (struct reqspec){"PATCH", pool[next_del].del,
                                               e.key,   "{\"externalId\":null}",
                                               NULL,    w}
                            : (struct reqspec){"DELETE", pool[next_del].del, e.key, NULL, NULL, w};
                    next_del++;
                } else {
                    char t[48];
                    snprintf(t, sizeof(t), "w%d-%u", w, salt);
                    body_of(kind, wbodies[w], sizeof(wbodies[w]), t);
                    q[nq] = (struct reqspec){"POST", kind_path[kind], e.key, wbodies[w], NULL, w};
                }
                nq++;
            }
            burst_free(&b);
            EXPECT(burst_fire(&e, q, (size_t)nq, &b) == 0, "burst");
            for (int i = 1; i < nq; i++) {
                int st = b.res[i].http.status;
                n5xx += st >= 500 || st == 0;
                if (st != 201 || npool >= LIST_MAX)
                    continue;
                npool += row_of(&b, (size_t)i, kind, &pool[npool]);
            }
            EXPECT(b.res[0].http.status == 200, "%s: status %d", lpath, b.res[0].http.status);
            json_t *j = res_json(&b, 0);
            json_t *data = json_object_get(j, "data");
            for (size_t i = 0; i < json_array_size(data) && nseen < LIST_MAX * 2; i++) {
                const char *id = jstr(json_array_get(data, i), "id", NULL);
                snprintf(seen[nseen++], sizeof(seen[0]), "%s", id ? id : "?");
            }
            const char *next = jstr(j, "cursor", NULL);
            snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
            json_decref(j);
            pages++;
            if (!cursor[0] || pages > 100)
                break;
        }
        EXPECT(n5xx == 0, "%s: %d writes were 5xx", lists[kind], n5xx);
        EXPECT(pages > 5, "%s: only %d pages", lists[kind], pages);
        for (int i = 0; i < nseen; i++)
            for (int k = i + 1; k < nseen; k++)
                EXPECT(strcmp(seen[i], seen[k]) != 0, "%s: %s shown twice (pages of 7)",
                       lists[kind], seen[i]);
        for (int s = 0; s < LIST_STABLE; s++) {
            int times = 0;
            for (int i = 0; i < nseen; i++)
                times += !strcmp(seen[i], stable[s].id);
            EXPECT(times == 1, "%s: %s, there all along, shown %d times", lists[kind], stable[s].id,
                   times);
        }
    }
out:
    burst_free(&b);
    env_down(&e);
}

void t_race_list_cursor_1srv(void)
{
    race_list_cursor(1);
}
void t_race_list_cursor_multi(void)
{
    race_list_cursor(MULTI);
}
