#include "probe/sock.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

int rf_send_from(int fd, const char *buf, size_t len, size_t *off, int *e)
{
    while (*off < len) {
        ssize_t w = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
        if (w > 0) {
            *off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            *e = w < 0 ? errno : EIO;
            return -1;
        }
    }
    return 1;
}

int rf_epoll_set(int ep, int op, int fd, uint32_t *have, uint32_t ev, uint64_t data)
{
    if (op == EPOLL_CTL_MOD && *have == ev)
        return 0;
    struct epoll_event e = {.events = ev, .data.u64 = data};
    if (epoll_ctl(ep, op, fd, &e) < 0)
        return -1;
    *have = ev;
    return 0;
}
