/* Non-blocking socket steps the burst engines (burst.c, h2.c) and tls.c
 * share; each caller words its own failure. */
#ifndef RF_PROBE_SOCK_H
#define RF_PROBE_SOCK_H

#include <stddef.h>
#include <stdint.h>

/* Sends buf[*off, len) to fd, advancing *off. Returns 1 when nothing is
 * left, 0 when the socket is full, -1 with *e set to an errno. */
int rf_send_from(int fd, const char *buf, size_t len, size_t *off, int *e);

/* epoll_ctl(ep, op, fd) for the events ev with data, and *have = ev; a
 * EPOLL_CTL_MOD to the events fd already has (*have) is skipped. Returns 0,
 * or -1 with errno set. */
int rf_epoll_set(int ep, int op, int fd, uint32_t *have, uint32_t ev, uint64_t data);

#endif
