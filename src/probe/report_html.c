#include "probe/report_html.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Timeline geometry, in SVG user units (px at 100 % zoom). */
#define TL_W 1100
#define TL_LEFT 92 /* row labels: "#9999" and the status */
#define TL_RIGHT 24
#define TL_TOP 30
#define TL_BOTTOM 40
#define TL_PLOT_W (TL_W - TL_LEFT - TL_RIGHT)
#define HIST_BAR_MAX 320.0

struct rf_probe_html {
    FILE *f;
    char *path;
    unsigned rounds; /* planned, decides which bursts start unfolded */
    size_t rows_drawn, max_rows;
    unsigned rounds_undrawn;
};

/* ---- escaping ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t len, unsigned long *cp)
{
    unsigned char c = s[0];
    size_t need;
    unsigned long v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return need;
}

/* The characters HTML text and attribute values escape. */
static const char *const entity[] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;",
};

void rf_probe_html_escape(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    while (k < len) {
        unsigned long cp;
        size_t m = utf8_seq(p + k, len - k, &cp);
        if (m == 0) {
            fputs("\xEF\xBF\xBD", f);
            k++;
            continue;
        }
        if (cp < sizeof(entity) / sizeof(entity[0]) && entity[cp])
            fputs(entity[cp], f);
        /* C0 and C1 controls are parse errors in HTML, and NUL is dropped
         * or replaced inconsistently; show that something was there. */
        else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
                 (cp >= 0x7F && cp <= 0x9F))
            fputs("\xEF\xBF\xBD", f);
        else
            fwrite(p + k, 1, m, f);
        k += m;
    }
}

static void esc(FILE *f, const char *s)
{
    if (s)
        rf_probe_html_escape(f, s, strlen(s));
}

/* At most max bytes of s, not cutting a UTF-8 sequence in two. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    /* Back off to the start of the sequence the cut falls into. */
    while (n > 0 && n > max - 3 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* ---- small helpers -------------------------------------------------------------- */

static const char *status_class(const struct rf_burst_res *q)
{
    if (q->err)
        return "err";
    int s = q->http.status;
    if (s >= 200 && s < 300)
        return "2xx";
    if (s >= 300 && s < 400)
        return "3xx";
    if (s >= 400 && s < 500)
        return "4xx";
    if (s >= 500 && s < 600)
        return "5xx";
    return "other";
}

static const char *code_class(int code)
{
    struct rf_burst_res q = {.http.status = code};
    return status_class(&q);
}

/* Microseconds since t0, or -1 when the moment was never reached. */
static double rel_us(uint64_t t, uint64_t t0)
{
    if (!t || t < t0)
        return -1;
    return (double)(t - t0) / 1e3;
}

/* The tick step: 1, 2 or 5 times a power of ten, about target ticks. */
static double nice_step(double span, int target)
{
    double raw = span / target;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "background:#f4f5f7;color:#1d2330}\n"
    "main{display:flex;flex-direction:column;gap:12px;padding:14px 18px;max-width:1180px}\n"
    "#head{order:-3}#summary{order:-2}#legend{order:-1}\n"
    "section,details.round{background:#fff;border:1px solid #d5d9e0;border-radius:6px;"
    "padding:10px 14px}\n"
    "h1{font-size:19px;margin:0 0 2px}h2{font-size:16px;margin:0 0 8px}"
    "h3{font-size:14px;margin:10px 0 4px}\n"
    "p{margin:4px 0}.muted{color:#5c6370}\n"
    "summary{cursor:pointer}details.round>summary{font-size:15px;padding:2px 0}\n"
    ".verdict{font-weight:700;padding:4px 12px;border-radius:4px;display:inline-block;"
    "color:#fff;margin-right:8px}\n"
    ".v0{background:#2b8a3e}.v1{background:#c92a2a}.v2{background:#6741d9}.v3{background:#e8590c}\n"
    ".cols{display:flex;flex-wrap:wrap;gap:8px 36px;align-items:flex-start}\n"
    "table{border-collapse:collapse}td,th{padding:1px 8px 1px 0;text-align:left;"
    "vertical-align:top}th{font-weight:600;color:#444}\n"
    ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    ".pass{color:#2b8a3e;font-weight:700}.fail{color:#c92a2a;font-weight:700}\n"
    ".hbar{height:12px;display:inline-block;vertical-align:middle;border-radius:2px}\n"
    ".mono,.reqs td{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px}\n"
    ".mono{word-break:break-all}\n"
    ".reqs td{border-top:1px solid #eceef1;padding-right:12px}.reqs td.body{word-break:break-all}\n"
    "svg{display:block;max-width:100%;height:auto}\n"
    "svg text{font:11px ui-monospace,'DejaVu Sans Mono',monospace;fill:#333}\n"
    "svg text.cap{font:12px system-ui,sans-serif;fill:#444}\n"
    ".grid{stroke:#e6e8ec}.axis{stroke:#8a919c}\n"
    ".band{fill:#fcc419;opacity:.35}\n"
    ".hit{fill:transparent}.req:hover .hit{fill:#e3e9f3}\n"
    ".held{stroke:#a3abb5;stroke-width:1}.fb{stroke:#111;stroke-width:1.6}\n"
    ".wait{opacity:.38}\n"
    ".c2xx rect.wait,.c2xx rect.resp,.sw2xx{fill:#2b8a3e}.k2xx{background:#2b8a3e}\n"
    ".c3xx rect.wait,.c3xx rect.resp,.sw3xx{fill:#1c7ed6}.k3xx{background:#1c7ed6}\n"
    ".c4xx rect.wait,.c4xx rect.resp,.sw4xx{fill:#f08c00}.k4xx{background:#f08c00}\n"
    ".c5xx rect.wait,.c5xx rect.resp,.sw5xx{fill:#e03131}.k5xx{background:#e03131}\n"
    ".cerr rect.wait,.cerr rect.resp,.swerr{fill:#7048e8}.kerr{background:#7048e8}\n"
    ".cother rect.wait,.cother rect.resp,.swother{fill:#868e96}.kother{background:#868e96}\n";

/* ---- document head -------------------------------------------------------------- */

static void legend(FILE *f)
{
    static const struct {
        const char *cls, *label;
        double w; /* room for the label */
    } kinds[] = {{"2xx", "2xx", 60},
                 {"3xx", "3xx", 60},
                 {"4xx", "4xx", 60},
                 {"5xx", "5xx", 60},
                 {"err", "no response (refused, reset, timed out, malformed)", 340}};
    fputs("<section id=\"legend\"><svg class=\"legend\" width=\"1100\" height=\"46\" "
          "viewBox=\"0 0 1100 46\">\n",
          f);
    double x = 4;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        fprintf(f,
                "<rect class=\"sw%s\" x=\"%.0f\" y=\"3\" width=\"14\" height=\"14\" rx=\"2\"/>"
                "<text class=\"cap\" x=\"%.0f\" y=\"15\">%s</text>\n",
                kinds[k].cls, x, x + 20, kinds[k].label);
        x += 20 + kinds[k].w;
    }
    fprintf(f,
            "<rect class=\"band\" x=\"%.0f\" y=\"2\" width=\"16\" height=\"16\"/>"
            "<text class=\"cap\" x=\"%.0f\" y=\"15\">release window: first to last final byte "
            "sent</text>\n",
            x + 20, x + 42);
    /* One sample row, with what each part of it means. */
    fputs("<g class=\"c2xx\">"
          "<line class=\"held\" x1=\"4\" x2=\"44\" y1=\"36\" y2=\"36\"/>"
          "<rect class=\"wait\" x=\"44\" y=\"31\" width=\"60\" height=\"10\"/>"
          "<rect class=\"resp\" x=\"104\" y=\"31\" width=\"16\" height=\"10\"/>"
          "<line class=\"fb\" x1=\"44\" x2=\"44\" y1=\"28\" y2=\"44\"/></g>\n"
          "<text class=\"cap\" x=\"132\" y=\"40\">line: connected, request held back "
          "&#8226; tick: final byte sent &#8226; pale: waiting for the first byte &#8226; "
          "solid: first byte to complete &#8226; hover a row for its times and body</text>\n"
          "</svg></section>\n",
          f);
}

struct rf_probe_html *rf_probe_html_open(const char *path, const struct rf_probe_target *t,
                                         char *err, size_t errlen)
{
    struct rf_probe_html *h = calloc(1, sizeof(*h));
    if (!h || !(h->path = strdup(path))) {
        snprintf(err, errlen, "out of memory");
        free(h);
        return NULL;
    }
    h->f = fopen(path, "w");
    if (!h->f) {
        snprintf(err, errlen, "cannot create report %.200s: %s", path, strerror(errno));
        free(h->path);
        free(h);
        return NULL;
    }
    h->rounds = t->rounds;
    h->max_rows = t->max_rows ? t->max_rows : RF_PROBE_HTML_MAX_ROWS;
    FILE *f = h->f;
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);

    /* The policy is a second line of defence: should escaping ever miss,
     * no script runs and nothing is fetched. */
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"racefree probe\">\n<title>racefree probe: ",
          f);
    esc(f, t->method);
    fputc(' ', f);
    esc(f, t->url);
    fprintf(f, "</title>\n<style>\n%s</style></head>\n<body><main>\n", css);
    fputs("<section id=\"head\"><h1>racefree probe: ", f);
    fprintf(f, "%zu &times; ", t->n);
    esc(f, t->method);
    fputs(" <span class=\"mono\">", f);
    esc(f, t->url);
    fprintf(f,
            "</span></h1>\n<p class=\"muted\">%u burst%s of %zu request%s, sync %s, timeout %d "
            "ms. Report written %s.</p></section>\n",
            t->rounds, t->rounds == 1 ? "" : "s", t->n, t->n == 1 ? "" : "s",
            t->sync ? t->sync : "?", t->timeout_ms, when);
    legend(f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot write report %.200s", path);
        fclose(f);
        free(h->path);
        free(h);
        return NULL;
    }
    return h;
}

/* ---- figures ---------------------------------------------------------------------- */

static void histogram(FILE *f, const struct rf_probe_stats *s)
{
    size_t top = s->no_response;
    for (size_t k = 1; k < RF_PROBE_STATUS_MAX; k++)
        if (s->status[k] > top)
            top = s->status[k];
    fputs("<table class=\"hist\"><tr><th>status</th><th></th><th class=\"num\">count</th></tr>\n",
          f);
    unsigned short order[RF_PROBE_STATUS_MAX];
    size_t n = rf_probe_status_order(s, order);
    for (size_t i = 0; i < n; i++) {
        size_t best = order[i];
        fprintf(f,
                "<tr><td class=\"num\">%zu</td><td><span class=\"hbar k%s\" "
                "style=\"width:%.1fpx\"></span></td><td class=\"num\">&times;%zu</td></tr>\n",
                best, code_class((int)best),
                fmax(2.0, HIST_BAR_MAX * (double)s->status[best] / (double)top), s->status[best]);
    }
    if (s->no_response)
        fprintf(f,
                "<tr><td>no response</td><td><span class=\"hbar kerr\" "
                "style=\"width:%.1fpx\"></span></td><td class=\"num\">&times;%zu</td></tr>\n",
                fmax(2.0, HIST_BAR_MAX * (double)s->no_response / (double)top), s->no_response);
    if (!top)
        fputs("<tr><td colspan=\"3\">(no requests)</td></tr>\n", f);
    fputs("</table>\n", f);
}

static void figures(FILE *f, struct rf_probe_stats *s)
{
    struct rf_probe_figs fg;
    fprintf(f,
            "<table class=\"figs\"><tr><th>requests</th><td class=\"num\">%zu</td></tr>\n"
            "<tr><th>5xx</th><td class=\"num\">%zu</td></tr>\n"
            "<tr><th>no response</th><td class=\"num\">%zu</td></tr>\n",
            s->requests, s->n5xx, s->no_response);
    if (s->no_response) {
        fprintf(f, "<tr><th>first</th><td>round %u, request %ld: ", s->first_err_round,
                s->first_err_i);
        esc(f, s->first_err);
        fputs("</td></tr>\n", f);
    }
    rf_probe_stats_figs(s, &fg);
    if (fg.has_lat)
        fprintf(f,
                "<tr><th>latency</th><td>min %s &middot; p50 %s &middot; p99 %s &middot; max "
                "%s</td></tr>\n",
                fg.lat_min, fg.lat_p50, fg.lat_p99, fg.lat_max);
    if (fg.nspread == 1)
        fprintf(f, "<tr><th>spread</th><td>%s (first to last final byte sent)</td></tr>\n",
                fg.spread_one);
    else if (fg.nspread > 1)
        fprintf(f,
                "<tr><th>spread</th><td>min %s &middot; median %s &middot; max %s over %zu "
                "bursts</td></tr>\n",
                fg.spread_min, fg.spread_median, fg.spread_max, fg.nspread);
    fputs("</table>\n", f);
}

static void exp_label(FILE *f, const struct rf_probe_exp *x)
{
    char label[400];
    rf_probe_exp_label(label, sizeof(label), x);
    esc(f, label);
}

static void expectations(FILE *f, const struct rf_probe_round *r)
{
    if (!r->nexps) {
        fputs("<p class=\"muted\">No expectations given.</p>\n", f);
        return;
    }
    fputs("<table class=\"exps\"><tr><th></th><th>expectation</th><th class=\"num\">got</th>"
          "<th class=\"num\">want</th><th></th></tr>\n",
          f);
    for (size_t k = 0; k < r->nexps; k++) {
        const struct rf_probe_exp_res *e = &r->exp_res[k];
        fprintf(f, "<tr><td class=\"%s\">%s</td><td class=\"mono\">", e->pass ? "pass" : "fail",
                e->pass ? "PASS" : "FAIL");
        exp_label(f, &r->exps[k]);
        fputs("</td><td class=\"num\">", f);
        if (e->got >= 0)
            fprintf(f, "%ld", e->got);
        fprintf(f, "</td><td class=\"num\">%ld</td><td class=\"mono\">", e->want);
        esc(f, e->detail);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* ---- timeline --------------------------------------------------------------------- */

static void time_line(FILE *f, const char *what, double us)
{
    if (us >= 0)
        fprintf(f, "\n%-16s %.1f \xC2\xB5s", what, us);
}

static void body_snippet(FILE *f, const struct rf_burst_res *q)
{
    if (q->err || !q->http.body)
        return;
    size_t n = utf8_prefix(q->http.body, q->http.body_len, RF_PROBE_HTML_BODY);
    rf_probe_html_escape(f, q->http.body, n);
    if (n < q->http.body_len)
        fprintf(f, "\xE2\x80\xA6 (%zu bytes)", q->http.body_len);
}

static void tooltip(FILE *f, const struct rf_burst_res *q, size_t i, unsigned rnd, uint64_t t0,
                    const char *group)
{
    fprintf(f, "request #%zu, burst %u: ", i, rnd);
    if (group) {
        fputs("group ", f);
        esc(f, group);
        fputs(", ", f);
    }
    if (q->err) {
        fputs("no response: ", f);
        esc(f, q->err_msg);
    } else {
        fprintf(f, "status %d", q->http.status);
    }
    time_line(f, "connected", rel_us(q->t_connected_ns, t0));
    time_line(f, "final byte sent", rel_us(q->t_lastbyte_ns, t0));
    time_line(f, "first byte back", rel_us(q->t_firstbyte_ns, t0));
    time_line(f, q->err ? "failed" : "complete", rel_us(q->t_done_ns, t0));
    if (!q->err && q->t_lastbyte_ns && q->t_done_ns >= q->t_lastbyte_ns)
        time_line(f, "latency", (double)(q->t_done_ns - q->t_lastbyte_ns) / 1e3);
    if (!q->err && q->http.body) {
        fputs("\nbody: ", f);
        body_snippet(f, q);
    }
}

struct scale {
    double dom; /* µs at the right edge */
};

static double sx(const struct scale *s, double us)
{
    return TL_LEFT + us / s->dom * TL_PLOT_W;
}

static void axis_labels(FILE *f, double y, double step, const struct scale *s)
{
    for (long k = 0; (double)k * step <= s->dom * (1 + 1e-9); k++) {
        double v = (double)k * step;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", sx(s, v), y);
        if (step >= 1)
            fprintf(f, "%.0f", v);
        else
            fprintf(f, "%.1f", v);
        fputs("</text>", f);
    }
    fputc('\n', f);
}

static void timeline(FILE *f, const struct rf_probe_round *r)
{
    size_t n = r->n;
    uint64_t t0 = r->t0_ns, lo = UINT64_MAX, hi = 0;
    double tmax = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rf_burst_res *q = &r->res[i];
        uint64_t ts[4] = {q->t_connected_ns, q->t_lastbyte_ns, q->t_firstbyte_ns, q->t_done_ns};
        for (int k = 0; k < 4; k++)
            tmax = fmax(tmax, rel_us(ts[k], t0));
        if (q->t_lastbyte_ns >= t0 && q->t_lastbyte_ns) {
            lo = q->t_lastbyte_ns < lo ? q->t_lastbyte_ns : lo;
            hi = q->t_lastbyte_ns > hi ? q->t_lastbyte_ns : hi;
        }
    }
    double span = fmax(tmax, 1.0);
    double step = nice_step(span, 10);
    struct scale s = {.dom = ceil(span / step - 1e-9) * step};
    /* Small bursts get labelled rows; large ones stay scrollable. */
    int rh = n <= 200 ? 16 : n <= 2000 ? 6 : 3;
    int labels = rh >= 12;
    double plot_h = (double)n * rh, bottom = TL_TOP + plot_h;
    double height = bottom + TL_BOTTOM;

    if (hi) {
        char sp[32];
        rf_probe_fmt_ns(sp, sizeof(sp), hi - lo);
        fprintf(f,
                "<p>Final bytes released within <b>%s</b> (yellow band), from %.1f to %.1f "
                "\xC2\xB5s after the burst started.</p>\n",
                sp, rel_us(lo, t0), rel_us(hi, t0));
    }
    fprintf(f,
            "<svg class=\"tl\" data-round=\"%u\" data-rows=\"%zu\" width=\"%d\" height=\"%.0f\" "
            "viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"timeline of burst %u, %zu "
            "requests\">\n",
            r->round, n, TL_W, height, TL_W, height, r->round, n);
    for (long k = 0; (double)k * step <= s.dom * (1 + 1e-9); k++) {
        double x = sx(&s, (double)k * step);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\"/>", x, x,
                TL_TOP - 4, bottom + 4);
    }
    fputc('\n', f);
    axis_labels(f, TL_TOP - 8, step, &s);
    if (hi) {
        double x1 = sx(&s, rel_us(lo, t0)), x2 = sx(&s, rel_us(hi, t0));
        char sp[32];
        rf_probe_fmt_ns(sp, sizeof(sp), hi - lo);
        fprintf(f,
                "<rect class=\"band\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.0f\">"
                "<title>release window: every final byte sent within %s</title></rect>\n",
                x1 - 1, TL_TOP - 2, fmax(x2 - x1, 0) + 2, plot_h + 4, sp);
    }
    for (size_t i = 0; i < n; i++) {
        const struct rf_burst_res *q = &r->res[i];
        double y = TL_TOP + (double)i * rh;
        double bh = rh >= 12 ? rh - 6 : fmax(rh - 1, 1), by = y + (rh - bh) / 2;
        double conn = rel_us(q->t_connected_ns, t0), lb = rel_us(q->t_lastbyte_ns, t0);
        double fb = rel_us(q->t_firstbyte_ns, t0), done = rel_us(q->t_done_ns, t0);
        const char *group = r->group_of ? r->group_names[r->group_of[i]] : NULL;
        fprintf(f, "<g class=\"req c%s\" data-i=\"%zu\" data-status=\"%d\"", status_class(q), i,
                q->err ? 0 : q->http.status);
        if (group) {
            fputs(" data-group=\"", f);
            esc(f, group);
            fputs("\"", f);
        }
        fputs("><title>", f);
        tooltip(f, q, i, r->round, t0, group);
        fprintf(f, "</title><rect class=\"hit\" x=\"0\" y=\"%.0f\" width=\"%d\" height=\"%d\"/>", y,
                TL_W, rh);
        if (labels) {
            fprintf(f, "<text x=\"4\" y=\"%.0f\">#%zu", y + rh - 4, i);
            if (group) {
                fputs(" ", f);
                esc(f, group);
            }
            fputs("</text>", f);
            fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">", TL_LEFT - 8, y + rh - 4);
            if (q->err)
                fputs("error", f);
            else
                fprintf(f, "%d", q->http.status);
            fputs("</text>", f);
        }
        /* Where the request started waiting: its final byte, or for one
         * that never got that far, its connection or the burst start. */
        double from = lb >= 0 ? lb : conn >= 0 ? conn : 0;
        double end = done >= 0 ? done : from;
        /* A server may answer before the final byte (a 4xx on the headers
         * alone): then there is no waiting, only the response. */
        double first = fb >= 0 ? fb : end;
        if (conn >= 0 && lb > conn)
            fprintf(f, "<line class=\"held\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
                    sx(&s, conn), sx(&s, lb), y + rh / 2.0, y + rh / 2.0);
        if (first > from)
            fprintf(f,
                    "<rect class=\"wait\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                    sx(&s, from), by, sx(&s, first) - sx(&s, from), bh);
        double x1 = sx(&s, first), x2 = sx(&s, fmax(end, first));
        /* The transfer of a small body takes microseconds: keep it visible. */
        fprintf(f, "<rect class=\"resp\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                x1, by, fmax(x2 - x1, 2.0), bh);
        if (lb >= 0)
            fprintf(f, "<line class=\"fb\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
                    sx(&s, lb), sx(&s, lb), y + 1, y + rh - 1);
        fputs("</g>\n", f);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%.0f\" y2=\"%.0f\"/>\n", TL_LEFT,
            TL_W - TL_RIGHT, bottom + 4, bottom + 4);
    axis_labels(f, bottom + 17, step, &s);
    fprintf(f,
            "<text class=\"cap\" x=\"%d\" y=\"%.0f\" text-anchor=\"middle\">\xC2\xB5s since "
            "the burst started</text>\n</svg>\n",
            TL_LEFT + TL_PLOT_W / 2, bottom + 34);
}

static void request_table(FILE *f, const struct rf_probe_round *r)
{
    fputs("<details><summary>Every request as a table (times in \xC2\xB5s since the burst "
          "started)</summary>\n<table class=\"reqs\"><tr><th>#</th>",
          f);
    if (r->group_of)
        fputs("<th>group</th>", f);
    fputs("<th>status</th>"
          "<th class=\"num\">connected</th><th class=\"num\">final byte</th>"
          "<th class=\"num\">first byte</th><th class=\"num\">done</th>"
          "<th class=\"num\">latency</th><th>body</th></tr>\n",
          f);
    for (size_t i = 0; i < r->n; i++) {
        const struct rf_burst_res *q = &r->res[i];
        double ts[4] = {rel_us(q->t_connected_ns, r->t0_ns), rel_us(q->t_lastbyte_ns, r->t0_ns),
                        rel_us(q->t_firstbyte_ns, r->t0_ns), rel_us(q->t_done_ns, r->t0_ns)};
        fprintf(f, "<tr><td class=\"num\">%zu</td><td>", i);
        if (r->group_of) {
            esc(f, r->group_names[r->group_of[i]]);
            fputs("</td><td>", f);
        }
        if (q->err)
            fputs("error", f);
        else
            fprintf(f, "%d", q->http.status);
        fputs("</td>", f);
        for (int k = 0; k < 4; k++)
            if (ts[k] >= 0)
                fprintf(f, "<td class=\"num\">%.1f</td>", ts[k]);
            else
                fputs("<td class=\"num\">-</td>", f);
        if (!q->err && q->t_lastbyte_ns && q->t_done_ns >= q->t_lastbyte_ns)
            fprintf(f, "<td class=\"num\">%.1f</td>",
                    (double)(q->t_done_ns - q->t_lastbyte_ns) / 1e3);
        else
            fputs("<td class=\"num\">-</td>", f);
        fputs("<td class=\"body\">", f);
        if (q->err)
            esc(f, q->err_msg);
        else
            body_snippet(f, q);
        fputs("</td></tr>\n", f);
    }
    fputs("</table></details>\n", f);
}

int rf_probe_html_round(struct rf_probe_html *h, const struct rf_probe_round *r)
{
    if (!h)
        return 0;
    FILE *f = h->f;
    int pass = r->stats->no_response == 0;
    for (size_t k = 0; k < r->nexps; k++)
        pass &= r->exp_res[k].pass != 0;
    /* A long run unfolds only the bursts worth looking at. */
    int open = h->rounds <= 10 || !pass || r->round == 1;
    fprintf(f,
            "<details class=\"round\" id=\"round-%u\"%s><summary><b>Burst %u</b> of %u: ", r->round,
            open ? " open" : "", r->round, h->rounds);
    fprintf(f, "<span class=\"%s\">%s</span>", pass ? "pass" : "fail",
            pass                    ? "PASS"
            : r->stats->no_response ? "ERROR"
                                    : "FAIL");
    if (r->spread.inconclusive)
        fputs(" <span class=\"fail\">INCONCLUSIVE</span> (spread over --max-spread)", f);
    fputs("</summary>\n", f);
    int draw = h->rows_drawn + r->n <= h->max_rows;
    if (draw) {
        timeline(f, r);
        h->rows_drawn += r->n;
    } else {
        h->rounds_undrawn++;
        fprintf(f,
                "<p class=\"muted\">Timeline not drawn: the report draws at most %zu request "
                "rows.</p>\n",
                h->max_rows);
    }
    fputs("<div class=\"cols\"><div>", f);
    figures(f, r->stats);
    if (r->verify_url) {
        fputs("<p>verify <span class=\"mono\">GET ", f);
        esc(f, r->verify_url);
        fputs("</span> ", f);
        if (!r->verify)
            fputs("not sent", f);
        else if (r->verify->err) {
            fputs("got no response: ", f);
            esc(f, r->verify->err_msg);
        } else {
            fprintf(f, "answered %d", r->verify->http.status);
        }
        fputs("</p>\n", f);
    }
    if (r->spread.nstamps >= 2) {
        char a[32];
        rf_probe_fmt_ns(a, sizeof(a), r->spread.server_ns);
        fprintf(f, "<p>server-side spread %s</p>\n", a);
    }
    fputs("</div><div>", f);
    histogram(f, r->stats);
    for (size_t g = 0; g < r->ngroups; g++) {
        fputs("<p class=\"mono\">group ", f);
        esc(f, r->group_names[g]);
        fputs("</p>\n", f);
        histogram(f, &r->group_stats[g]);
    }
    fputs("</div><div>", f);
    expectations(f, r);
    fputs("</div></div>\n", f);
    if (draw)
        request_table(f, r);
    fputs("</details>\n", f);
    return ferror(f) ? -1 : 0;
}

/* ---- summary ------------------------------------------------------------------------- */

static void summary(FILE *f, const struct rf_probe_html *h, const struct rf_probe_summary *t)
{
    static const char *const verdicts[] = {"PASS", "FAIL", "ERROR", "INCONCLUSIVE"};
    int code = t->exit_code >= 0 && t->exit_code <= 3 ? t->exit_code : 2;
    fprintf(f, "<section id=\"summary\"><p><span class=\"verdict v%d\">%s</span>", code,
            verdicts[code]);
    if (code == 0)
        fputs(t->nexps ? "every expectation held in every burst" : "no expectations given", f);
    else
        esc(f, t->error);
    fprintf(f, " <span class=\"muted\">(exit status %d)</span></p>\n", code);
    fprintf(f, "<p class=\"muted\">%u of %u burst%s ran%s.", t->rounds_done, h->rounds,
            h->rounds == 1 ? "" : "s", t->realtime ? " at real-time priority" : "");
    if (h->rounds_undrawn)
        fprintf(f, " The timelines of %u later bursts are left out (at most %zu rows are drawn).",
                h->rounds_undrawn, h->max_rows);
    fputs("</p>\n", f);
    /* One burst's own section already says everything. */
    if (t->rounds_done < 2 || !t->stats) {
        fputs("</section>\n", f);
        return;
    }
    fputs("<h3>All bursts together</h3><div class=\"cols\"><div>", f);
    figures(f, t->stats);
    fputs("</div><div>", f);
    histogram(f, t->stats);
    fputs("</div><div>", f);
    if (t->nexps) {
        fputs("<table class=\"exps\"><tr><th></th><th>expectation</th><th>held</th></tr>\n", f);
        for (size_t k = 0; k < t->nexps; k++) {
            int held = t->exp_held[k] == t->rounds_done;
            fprintf(f, "<tr><td class=\"%s\">%s</td><td class=\"mono\">", held ? "pass" : "fail",
                    held ? "PASS" : "FAIL");
            exp_label(f, &t->exps[k]);
            fprintf(f, "</td><td>in %zu of %u burst%s</td></tr>\n", t->exp_held[k], t->rounds_done,
                    t->rounds_done == 1 ? "" : "s");
        }
        fputs("</table>\n", f);
    } else {
        fputs("<p class=\"muted\">No expectations given.</p>\n", f);
    }
    fputs("</div></div></section>\n", f);
}

int rf_probe_html_close(struct rf_probe_html *h, const struct rf_probe_summary *t, char *err,
                        size_t errlen)
{
    if (!h)
        return 0;
    int rc = 0;
    summary(h->f, h, t);
    fputs("</main></body></html>\n", h->f);
    if (ferror(h->f)) {
        rc = -1;
        snprintf(err, errlen, "writing report %.200s failed", h->path);
    }
    if (fclose(h->f) != 0 && rc == 0) {
        rc = -1;
        snprintf(err, errlen, "writing report %.200s failed: %s", h->path, strerror(errno));
    }
    free(h->path);
    free(h);
    return rc;
}

/* ---- the reporter ------------------------------------------------------------------ */

struct html_rep {
    const char *path;
    struct rf_probe_html *h;
};

static int html_begin(void *ctx, const struct rf_probe_target *t, char *err, size_t errlen)
{
    struct html_rep *x = ctx;
    char e[300];
    x->h = rf_probe_html_open(x->path, t, e, sizeof(e));
    if (!x->h) {
        snprintf(err, errlen, "--report: %s", e);
        return -1;
    }
    return 0;
}

static void html_round(void *ctx, const struct rf_probe_round *r)
{
    /* A write error is reported once, when the report is closed. */
    (void)rf_probe_html_round(((struct html_rep *)ctx)->h, r);
}

static int html_end(void *ctx, const struct rf_probe_summary *s, char *err, size_t errlen)
{
    struct html_rep *x = ctx;
    int rc = rf_probe_html_close(x->h, s, err, errlen);
    free(x);
    return rc;
}

static void html_discard(void *ctx)
{
    struct html_rep *x = ctx;
    if (x->h) {
        fclose(x->h->f);
        free(x->h->path);
        free(x->h);
    }
    free(x);
}

static const struct rf_probe_reporter_ops html_ops = {
    .begin = html_begin, .round = html_round, .end = html_end, .discard = html_discard};

int rf_probe_reporter_html(struct rf_probe_reporter *rep, const char *path)
{
    struct html_rep *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->path = path;
    *rep = (struct rf_probe_reporter){.ops = &html_ops, .ctx = x};
    return 0;
}
