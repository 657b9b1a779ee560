/* HTTP/2 single-packet burst (--sync packet), with libnghttp2 doing HPACK
 * and framing. The requests share a few connections (h2 by ALPN over TLS, or
 * h2c with prior knowledge): every request's HEADERS and all but the last
 * byte of its body (or all of it but END_STREAM) are sent first, a PING
 * round trip proves the server has read them, and then each connection's
 * final DATA frames, prepared in advance, leave in one write, connection
 * after connection. No server acts on a request before its END_STREAM, so a
 * connection's requests become complete in the same packet. */
#ifndef RF_PROBE_H2_H
#define RF_PROBE_H2_H

#include <stddef.h>
#include <stdint.h>

#include "probe/burst.h"

/* Streams put on one connection at most, even when the server allows more:
 * 100 final DATA frames and a PING make about 1 KiB, one Ethernet frame. */
#define RF_H2_STREAMS_PER_CONN 100

/* rf_burst_run for o->sync == RF_BURST_PACKET (it dispatches here); same
 * contract. reqs[i].data holds an HTTP/1.1 request as probe/request.h builds
 * it; it is turned into HTTP/2 headers (Host becomes :authority, connection
 * headers are dropped). o->tls set: h2 over TLS, and a server whose ALPN
 * answer is not h2 fails each request with RF_BURST_ERR_TLS; NULL: h2c with
 * prior knowledge. Streams reset by the server, or refused by its GOAWAY,
 * fail with RF_BURST_ERR_RESET. res[i].http gets the status, a head of the
 * form "HTTP/2 200\r\nname: value\r\n...\r\n" and the body. */
int rf_h2_run(const struct rf_burst_req *reqs, size_t n, const struct rf_burst_opts *o,
              struct rf_burst_res *res, char *errbuf, size_t errlen);

/* The response path alone, for the fuzzer and the unit tests: a client
 * session that has sent n bodiless GETs (streams 1, 3, 5, ...) reads data as
 * everything the server sent, in pieces of at most chunk bytes (0: all at
 * once), and fills res[0, n) as rf_h2_run would; requests left without an
 * answer fail as truncated. Returns 0, or -1 when a session cannot be set up.
 * Free res with rf_burst_res_free. */
int rf_h2_parse_responses(const uint8_t *data, size_t len, size_t chunk, size_t n,
                          size_t max_response, struct rf_burst_res *res);

#endif
