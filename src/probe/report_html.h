/* The prober's HTML report (--report FILE): one self-contained file that a
 * CI job can keep as an artifact and anyone can open in a browser, showing
 * per burst an SVG timeline with a row per request (connected, final byte
 * sent, first byte back, complete; coloured by status class), the status
 * histogram and the expectations, and the verdict over all bursts.
 *
 * The file holds no script and loads nothing: styles are inline, tooltips are
 * SVG <title> elements, and a Content-Security-Policy forbids scripts and
 * external loads should an escaping bug ever let markup through. Everything
 * that came from the server or the command line is HTML-escaped.
 *
 * The report is streamed: each burst is written as it finishes, so a run of
 * many bursts never holds more than one burst's results. The functions
 * below are the HTML reporter (rf_probe_reporter_html) without the vtable. */
#ifndef RF_PROBE_REPORT_HTML_H
#define RF_PROBE_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "probe/report.h"

/* Timelines of later bursts are left out (their figures are not) once this
 * many request rows are drawn, so that a run of 10,000 bursts still gives a
 * file a browser can open. A burst is drawn whole or not at all. */
#define RF_PROBE_HTML_MAX_ROWS 50000
/* Bytes of each response body shown in the tooltip and the request table. */
#define RF_PROBE_HTML_BODY 200

struct rf_probe_html;

/* Creates (truncates) path and writes the document's head. NULL with err
 * filled when the file cannot be created. */
struct rf_probe_html *rf_probe_html_open(const char *path, const struct rf_probe_target *t,
                                         char *err, size_t errlen);
/* Appends one burst: figures, expectations, timeline. Returns 0, or -1 when
 * writing failed (rf_probe_html_close then reports it). */
int rf_probe_html_round(struct rf_probe_html *h, const struct rf_probe_round *r);
/* Writes the summary and the end of the document, closes the file and frees
 * h (always). Returns 0, or -1 with err filled when anything failed to be
 * written. */
int rf_probe_html_close(struct rf_probe_html *h, const struct rf_probe_summary *t, char *err,
                        size_t errlen);

/* Writes len bytes of s as HTML text, safe both between tags and inside a
 * quoted attribute value: & < > " ' become character references; bytes that
 * are not valid UTF-8 and control characters other than tab, CR and LF
 * become U+FFFD, so whatever a server sends cannot break the document. */
void rf_probe_html_escape(FILE *f, const char *s, size_t len);

#endif
