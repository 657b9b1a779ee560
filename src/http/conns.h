/* Connection limits libmicrohttpd does not enforce by itself: deadlines per
 * phase of a connection (a request head trickled byte by byte resets MHD's
 * inactivity timeout, so that alone never ends a slowloris client), and a
 * total limit that makes room for a new client by closing the connection
 * that has waited longest for a request, instead of turning it away. */
#ifndef RF_CONNS_H
#define RF_CONNS_H

struct rf_conns_limits {
    unsigned max;       /* open connections; 0: no limit of ours */
    int header_timeout; /* s for a request head, from connect or its request line */
    int body_timeout;   /* s for a request body, from the end of its head */
    int idle_timeout;   /* s a kept-alive connection may wait for its next request */
};

enum rf_conn_phase {
    RF_CONN_HEAD, /* waiting for a request head */
    RF_CONN_BODY, /* head seen, body arriving */
    RF_CONN_BUSY, /* handler running or response going out: no deadline of ours */
    RF_CONN_IDLE, /* kept alive between requests */
};

struct rf_conn;

/* Starts the reaper thread. Returns 0, or -1 (logged). */
int rf_conns_start(const struct rf_conns_limits *l);
/* Stops the reaper; connections still open are left to their daemon. */
void rf_conns_stop(void);

/* A new connection on socket fd. Over the limit it closes the connection
 * waiting longest for a request; when every connection is busy, it answers
 * this one 503 and marks it refused. NULL when out of memory (untracked). */
struct rf_conn *rf_conns_open(int fd);
/* Before the socket is closed; c may be NULL. */
void rf_conns_close(struct rf_conn *c);
void rf_conns_phase(struct rf_conn *c, enum rf_conn_phase p);
/* A request line arrived: a kept-alive connection starts its head deadline. */
void rf_conns_request_line(struct rf_conn *c);
/* The connection will be closed with a request body still arriving: its
 * close lingers (linger.h). */
void rf_conns_linger(struct rf_conn *c);
int rf_conns_lingers(const struct rf_conn *c);
/* 1 when the connection was answered 503 at accept and must be closed. */
int rf_conns_refused(const struct rf_conn *c);
/* Connections open now (for metrics and logs). */
unsigned rf_conns_count(void);

#endif
