/* The unit tests' HTTP server: one thread polling every connection, which
 * sees from the server's side whether a burst really held its requests back:
 * at the first complete request it counts the connections already holding
 * their prefix (all but the final byte). What a request gets back is the
 * caller's: respond is called once per complete request, in the server
 * thread. Listens on 127.0.0.1, on a port the kernel picks. */
#ifndef RF_TESTSRV_H
#define RF_TESTSRV_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TS_MAX_CONN 128
#define TS_HEAD_MAX 4096

struct ts_conn {
    int fd;
    char head[TS_HEAD_MAX + 1];
    size_t head_len; /* bytes kept of the request's start */
    size_t total;    /* bytes received */
    size_t need;     /* request size once its head is in, else 0 */
    int complete, eof;
};

struct tserver;
typedef void (*ts_respond_fn)(struct tserver *s, struct ts_conn *c);

/* Results are read only after ts_stop joins. */
struct tserver {
    int lfd, stop[2];
    pthread_t th;
    struct sockaddr_in addr;
    size_t prefix_len; /* bytes each request holds before its final byte */
    uint64_t stall_until_ns;
    int thread_err;
    size_t accepted, completed;
    int first_seen;
    size_t ready_at_first;    /* connections holding >= prefix_len bytes at first completion */
    size_t accepted_at_first; /* connections accepted at first completion */
    ts_respond_fn respond;
    void *arg;    /* the caller's, for respond */
    size_t posts; /* POST requests answered so far (for respond) */
    struct ts_conn c[TS_MAX_CONN];
};

/* stall_ms > 0 leaves request bytes unread for that long after the start, so
 * that a request larger than the client's send buffer forces partial writes.
 * NULL when the server cannot start. */
struct tserver *ts_start(size_t prefix_len, int stall_ms, ts_respond_fn respond, void *arg);
/* Stops and joins the thread, closing every socket; the figures stay
 * readable until free(s). */
void ts_stop(struct tserver *s);
int ts_port(const struct tserver *s);

/* For respond: writes all of d (a failure shows up in the client's results),
 * closes the connection, or sends a JSON answer of the status. */
void ts_send(struct ts_conn *c, const char *d, size_t len);
void ts_close(struct ts_conn *c);
void ts_reply(struct ts_conn *c, int status, const char *body);
/* 1 when the request line is METHOD followed by a path starting with path. */
int ts_is(const struct ts_conn *c, const char *method, const char *path);

/* ---- more for the probe tests ---- */

struct rf_burst_res;
/* A port that was just free on 127.0.0.1: nothing listens there. 0 on error. */
int ts_free_port(void);
/* A burst result as the engine would leave it: status, and body when not
 * NULL (owned by r; rf_burst_res_free frees it). */
void ts_fake_res(struct rf_burst_res *r, int status, const char *body);
/* Runs `racefree probe` in-process on a NULL-terminated argument list,
 * capturing stdout and stderr into *out and *err (malloc'd, NUL-terminated;
 * the caller frees them). Returns the exit code, or -1 when capture failed. */
int ts_run_probe(const char *const *args, char **out, char **err);
/* A new file /tmp/rf-NAME-XXXXXX holding content (NULL: empty); its path
 * (malloc'd), or NULL. The caller unlinks and frees it. */
char *ts_temp_file(const char *name, const char *content);

#endif
