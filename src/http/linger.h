/* Lingering close, as nginx's lingering_close: a connection closed while its
 * client is still sending (a 413 answered before a 2 MiB body arrived, a 400
 * for garbage) would, closed at once, turn the unread bytes into a TCP reset
 * that can destroy the response before the client reads it. Instead the
 * socket's write side is shut (the response and a FIN go out) and what the
 * client still sends is read and thrown away, within bounds, before the
 * socket is closed. */
#ifndef RF_LINGER_H
#define RF_LINGER_H

/* Starts the lingering thread. Returns 0, or -1 (logged). */
int rf_linger_start(void);
/* Takes ownership of fd, a socket whose response has been sent. Reads and
 * discards until the client closes, goes quiet for 1 s, 5 s pass or 16 MiB
 * arrive, then closes it. Thread-safe; closes at once when the thread is not
 * running or 1024 sockets already linger. */
void rf_linger_add(int fd);
/* Closes every lingering socket and joins the thread. */
void rf_linger_stop(void);

#endif
