/* Evidence that a burst overlapped where it matters: at the server. The
 * probe's own spread is measured when the final bytes leave this host; a
 * target that stamps each request's arrival in a response header
 * (--server-time HEADER) tells how close together they were handled, and
 * --max-spread turns a burst that was too loose into an inconclusive round
 * rather than a pass. */
#ifndef RF_PROBE_SERVERTIME_H
#define RF_PROBE_SERVERTIME_H

#include <stddef.h>
#include <stdint.h>

#include "probe/burst.h"

/* Parses a header value: a decimal number, with an optional fraction,
 * surrounding whitespace allowed. Its unit follows from its size, so that
 * every common clock reads right: below 10^11 it is Unix seconds
 * (1733240000.123456), below 10^14 milliseconds, below 10^17 microseconds,
 * otherwise nanoseconds. Writes ns since the epoch (any epoch works, only
 * differences are used). Returns 0, or -1 when s is not such a number. */
int rf_probe_servertime_parse(const char *s, size_t n, uint64_t *ns);

/* The server-side spread of one burst: max - min of the stamps found in
 * header of the responses. Returns how many responses carried a readable
 * stamp; *spread_ns is set when that is at least 2. */
size_t rf_probe_servertime_spread(const struct rf_burst_res *res, size_t n, const char *header,
                                  uint64_t *spread_ns);

#endif
