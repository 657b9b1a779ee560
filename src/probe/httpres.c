#include "probe/httpres.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum phase {
    PH_HEAD = 0, /* zero so that a zeroed struct starts here */
    PH_LENGTH,
    PH_CLOSE,
    PH_CHUNK_SIZE,
    PH_CHUNK_SIZE_WS,
    PH_CHUNK_EXT,
    PH_CHUNK_SIZE_LF,
    PH_CHUNK_DATA,
    PH_CHUNK_DATA_CR,
    PH_CHUNK_DATA_LF,
    PH_TRAILER_START,
    PH_TRAILER_LINE,
    PH_TRAILER_END_LF,
    PH_DONE,
    PH_ERROR,
};

#define HEAD_INITIAL_CAP 512
#define BODY_INITIAL_CAP 1024
#define BODY_PREALLOC_MAX ((size_t)64 << 10)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: anything else in a field name would make lookups ambiguous. */
static int is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int span_ieq(const char *s, size_t n, const char *lit)
{
    size_t ln = strlen(lit);
    if (n != ln)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lower(lit[i]))
            return 0;
    return 1;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*s)[*n - 1]))
        (*n)--;
}

static int set_err(struct rf_httpres *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int set_err(struct rf_httpres *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    r->priv.phase = PH_ERROR;
    return RF_HTTPRES_ERROR;
}

/* Server bytes go into error messages, so keep them printable and short. */
static void snippet(char *out, size_t outlen, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[k] = '\0';
}

/* Accounts n raw bytes against max_size before they are consumed. */
static int charge(struct rf_httpres *r, size_t n)
{
    if (n > r->priv.max_size - r->priv.consumed) {
        set_err(r, "response exceeds max size of %zu bytes", r->priv.max_size);
        return 0;
    }
    r->priv.consumed += n;
    return 1;
}

static int grow(struct rf_httpres *r, char **buf, size_t *cap, size_t need, size_t initial)
{
    if (need <= *cap)
        return 1;
    size_t ncap = *cap ? *cap : initial;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *p = realloc(*buf, ncap);
    if (!p) {
        set_err(r, "out of memory (%zu bytes)", ncap);
        return 0;
    }
    *buf = p;
    *cap = ncap;
    return 1;
}

static int body_append(struct rf_httpres *r, const char *d, size_t n)
{
    /* body_len <= consumed <= max_size, so the sum cannot overflow. */
    if (!grow(r, &r->body, &r->priv.body_cap, r->body_len + n + 1, BODY_INITIAL_CAP))
        return 0;
    memcpy(r->body + r->body_len, d, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 1;
}

static int finish(struct rf_httpres *r)
{
    /* Callers rely on body being a valid string even when empty. */
    if (!r->body && !grow(r, &r->body, &r->priv.body_cap, 1, 1))
        return RF_HTTPRES_ERROR;
    r->body[r->body_len] = '\0';
    r->priv.phase = PH_DONE;
    return RF_HTTPRES_DONE;
}

/* Iterates the header lines of a head, skipping the status line. *pos starts
 * at 0; only complete lines (ending in LF) are returned. */
static int next_header(const char *head, size_t head_len, size_t *pos, const char **name,
                       size_t *nlen, const char **val, size_t *vlen)
{
    size_t p = *pos;
    if (p == 0) {
        const char *nl = memchr(head, '\n', head_len);
        if (!nl)
            return 0;
        p = (size_t)(nl - head) + 1;
    }
    while (p < head_len) {
        const char *line = head + p;
        const char *nl = memchr(line, '\n', head_len - p);
        if (!nl)
            return 0;
        size_t ll = (size_t)(nl - line);
        p += ll + 1;
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            return 0;
        const char *colon = memchr(line, ':', ll);
        if (!colon)
            continue;
        *name = line;
        *nlen = (size_t)(colon - line);
        *val = colon + 1;
        *vlen = ll - *nlen - 1;
        trim(val, vlen);
        *pos = p;
        return 1;
    }
    return 0;
}

const char *rf_httpres_header(const struct rf_httpres *r, const char *name, size_t *len)
{
    const char *n, *v;
    size_t nl, vl, pos = 0;
    if (!r->head)
        return NULL;
    while (next_header(r->head, r->head_len, &pos, &n, &nl, &v, &vl)) {
        if (span_ieq(n, nl, name)) {
            if (len)
                *len = vl;
            return v;
        }
    }
    return NULL;
}

static int parse_status_line(struct rf_httpres *r, const char *s, size_t n)
{
    char snip[48];
    if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) || s[6] != '.' || !is_digit(s[7]) ||
        s[8] != ' ' || !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || s[9] == '0' ||
        (n > 12 && s[12] != ' ')) {
        snippet(snip, sizeof(snip), s, n);
        return set_err(r, "malformed status line \"%s\"", snip);
    }
    if (s[5] != '1') {
        snippet(snip, sizeof(snip), s, 8);
        return set_err(r, "unsupported protocol version %s", snip);
    }
    r->priv.minor = s[7] - '0';
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return RF_HTTPRES_MORE;
}

static int check_header_line(struct rf_httpres *r, const char *s, size_t n)
{
    char snip[48];
    if (is_ows(s[0]))
        return set_err(r, "obsolete header line folding");
    size_t i = 0;
    while (i < n && is_tchar(s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':') {
        snippet(snip, sizeof(snip), s, n);
        return set_err(r, "malformed header line \"%s\"", snip);
    }
    return RF_HTTPRES_MORE;
}

/* The comma-separated element of v[0, vl) that starts at *i, trimmed, into
 * e and el; moves *i past it. Returns 0 when the list is done. */
static int list_item(const char *v, size_t vl, size_t *i, const char **e, size_t *el)
{
    if (*i > vl)
        return 0;
    size_t j = *i;
    while (j < vl && v[j] != ',')
        j++;
    *e = v + *i;
    *el = j - *i;
    trim(e, el);
    *i = j + 1;
    return 1;
}

/* Content-Length may legally repeat (as headers or a list) only if every
 * value is identical; anything else is how response splitting starts. */
static int parse_content_length(struct rf_httpres *r, const char *v, size_t vl, int *have,
                                uint64_t *out)
{
    char snip[48];
    const char *e;
    size_t el;
    for (size_t i = 0; list_item(v, vl, &i, &e, &el);) {
        uint64_t x = 0;
        int ok = el > 0;
        for (size_t k = 0; ok && k < el; k++) {
            if (!is_digit(e[k]) || x > (UINT64_MAX - 9) / 10)
                ok = 0;
            else
                x = x * 10 + (uint64_t)(e[k] - '0');
        }
        if (!ok || (*have && x != *out)) {
            snippet(snip, sizeof(snip), v, vl);
            return set_err(r, "bad Content-Length \"%s\"", snip);
        }
        *have = 1;
        *out = x;
    }
    return RF_HTTPRES_MORE;
}

static void last_token(const char *v, size_t vl, const char **tok, size_t *tl)
{
    const char *comma = NULL;
    for (size_t i = 0; i < vl; i++)
        if (v[i] == ',')
            comma = v + i;
    *tok = comma ? comma + 1 : v;
    *tl = vl - (size_t)(*tok - v);
    trim(tok, tl);
}

static int has_token(const char *v, size_t vl, const char *want)
{
    const char *e;
    size_t el;
    for (size_t i = 0; list_item(v, vl, &i, &e, &el);) {
        if (span_ieq(e, el, want))
            return 1;
    }
    return 0;
}

/* Decides framing per RFC 9112 section 6.3 once the final head is in. */
static int head_complete(struct rf_httpres *r)
{
    struct rf_httpres_priv *p = &r->priv;
    const char *n, *v;
    size_t nl, vl, pos = 0;
    int have_cl = 0, have_te = 0, chunked = 0, conn_close = 0, conn_keep = 0;
    uint64_t cl = 0;

    if (r->status >= 100 && r->status < 200 && r->status != 101) {
        /* Interim response: discard it and parse the next head in place. */
        r->head_len = 0;
        r->head[0] = '\0'; /* head stays a string even if no final head follows */
        r->status = 0;
        p->line_start = 0;
        return RF_HTTPRES_MORE;
    }
    while (next_header(r->head, r->head_len, &pos, &n, &nl, &v, &vl)) {
        if (span_ieq(n, nl, "content-length")) {
            if (parse_content_length(r, v, vl, &have_cl, &cl) != RF_HTTPRES_MORE)
                return RF_HTTPRES_ERROR;
        } else if (span_ieq(n, nl, "transfer-encoding")) {
            const char *t;
            size_t tl;
            last_token(v, vl, &t, &tl);
            have_te = 1;
            chunked = span_ieq(t, tl, "chunked");
        } else if (span_ieq(n, nl, "connection")) {
            conn_close |= has_token(v, vl, "close");
            conn_keep |= has_token(v, vl, "keep-alive");
        }
    }
    r->keep_alive = !conn_close && (p->minor >= 1 || conn_keep);

    if (r->head_request || r->status == 204 || r->status == 304 || r->status == 101) {
        if (r->status == 101)
            r->keep_alive = 0;
        return finish(r);
    }
    if (have_te) {
        /* TE overrides CL; both present smells of smuggling, so never reuse. */
        if (have_cl)
            r->keep_alive = 0;
        if (chunked) {
            p->phase = PH_CHUNK_SIZE;
            p->left = 0;
            p->chunk_digits = 0;
            return RF_HTTPRES_MORE;
        }
        p->phase = PH_CLOSE;
        r->keep_alive = 0;
        return RF_HTTPRES_MORE;
    }
    if (have_cl) {
        if (cl > p->max_size - p->consumed)
            return set_err(r, "Content-Length %llu exceeds max size of %zu bytes",
                           (unsigned long long)cl, p->max_size);
        if (cl == 0)
            return finish(r);
        /* Reserve up front only a modest amount: a lying Content-Length must
         * not commit memory the server never sends. */
        size_t reserve = cl < BODY_PREALLOC_MAX ? (size_t)cl + 1 : BODY_PREALLOC_MAX;
        if (!grow(r, &r->body, &p->body_cap, reserve, 1))
            return RF_HTTPRES_ERROR;
        p->left = cl;
        p->phase = PH_LENGTH;
        return RF_HTTPRES_MORE;
    }
    p->phase = PH_CLOSE;
    r->keep_alive = 0;
    return RF_HTTPRES_MORE;
}

static size_t feed_head(struct rf_httpres *r, const char *d, size_t n)
{
    struct rf_httpres_priv *p = &r->priv;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!charge(r, 1))
            return i;
        /* Tolerate stray blank lines before a status line, as RFC 9112 2.2 asks. */
        if (r->head_len == 0 && (c == '\r' || c == '\n'))
            continue;
        if (c == '\0') {
            set_err(r, "NUL byte in response head");
            return i;
        }
        if (!grow(r, &r->head, &p->head_cap, r->head_len + 2, HEAD_INITIAL_CAP))
            return i;
        r->head[r->head_len++] = c;
        r->head[r->head_len] = '\0';
        /* Fail fast on non-HTTP peers instead of buffering up to max_size. */
        if (r->head_len <= 5 && c != "HTTP/"[r->head_len - 1]) {
            char snip[8];
            snippet(snip, sizeof(snip), r->head, r->head_len);
            set_err(r, "malformed status line \"%s\"", snip);
            return i;
        }
        if (c != '\n')
            continue;
        size_t ls = p->line_start, le = r->head_len - 1;
        if (le > ls && r->head[le - 1] == '\r')
            le--;
        int st;
        if (ls == 0)
            st = parse_status_line(r, r->head, le);
        else if (le == ls)
            return head_complete(r) == RF_HTTPRES_ERROR ? i : i + 1;
        else
            st = check_header_line(r, r->head + ls, le - ls);
        if (st == RF_HTTPRES_ERROR)
            return i;
        p->line_start = r->head_len;
    }
    return n;
}

/* Takes *k = up to priv.left body bytes (a Content-Length body, or one
 * chunk's data). Returns 1 when that was the rest, 0 when more is to come,
 * -1 on error. */
static int take_counted(struct rf_httpres *r, const char *d, size_t n, size_t *k)
{
    *k = n < r->priv.left ? n : (size_t)r->priv.left;
    if (!charge(r, *k) || !body_append(r, d, *k))
        return -1;
    r->priv.left -= *k;
    return r->priv.left == 0;
}

static size_t feed_length(struct rf_httpres *r, const char *d, size_t n)
{
    size_t k;
    int st = take_counted(r, d, n, &k);
    if (st > 0)
        finish(r);
    return st < 0 ? 0 : k;
}

static size_t feed_close(struct rf_httpres *r, const char *d, size_t n)
{
    if (!charge(r, n) || !body_append(r, d, n))
        return 0;
    return n;
}

static size_t feed_chunk_data(struct rf_httpres *r, const char *d, size_t n)
{
    size_t k;
    int st = take_counted(r, d, n, &k);
    if (st > 0)
        r->priv.phase = PH_CHUNK_DATA_CR;
    return st < 0 ? 0 : k;
}

static void chunk_size_line_done(struct rf_httpres *r)
{
    r->priv.phase = r->priv.left == 0 ? PH_TRAILER_START : PH_CHUNK_DATA;
}

/* One byte of chunk framing (size line, CRLF after data, trailers). */
static void feed_chunk_byte(struct rf_httpres *r, char c)
{
    struct rf_httpres_priv *p = &r->priv;
    int h;
    switch (p->phase) {
    case PH_CHUNK_SIZE:
        h = hex_value(c);
        if (h >= 0) {
            /* The chunk must fit in what is left of max_size anyway. */
            if (p->left > (p->max_size - p->consumed) / 16) {
                set_err(r, "chunk size exceeds max size of %zu bytes", p->max_size);
                return;
            }
            p->left = p->left * 16 + (uint64_t)h;
            p->chunk_digits++;
            return;
        }
        if (p->chunk_digits == 0) {
            set_err(r, "bad chunk size (byte 0x%02x)", (unsigned char)c);
            return;
        }
        if (c == ';') {
            p->phase = PH_CHUNK_EXT;
        } else if (is_ows(c)) {
            p->phase = PH_CHUNK_SIZE_WS;
        } else if (c == '\r') {
            p->phase = PH_CHUNK_SIZE_LF;
        } else if (c == '\n') {
            chunk_size_line_done(r);
        } else {
            set_err(r, "bad chunk size (byte 0x%02x)", (unsigned char)c);
        }
        return;
    case PH_CHUNK_SIZE_WS:
        if (c == ';')
            p->phase = PH_CHUNK_EXT;
        else if (c == '\r')
            p->phase = PH_CHUNK_SIZE_LF;
        else if (c == '\n')
            chunk_size_line_done(r);
        else if (!is_ows(c))
            set_err(r, "bad chunk size (byte 0x%02x after size)", (unsigned char)c);
        return;
    case PH_CHUNK_EXT:
        /* Extensions carry nothing the prober needs; skip to end of line. */
        if (c == '\n')
            chunk_size_line_done(r);
        return;
    case PH_CHUNK_SIZE_LF:
        if (c == '\n')
            chunk_size_line_done(r);
        else
            set_err(r, "bad chunk size line (CR not followed by LF)");
        return;
    case PH_CHUNK_DATA_CR:
        if (c == '\r') {
            p->phase = PH_CHUNK_DATA_LF;
            return;
        }
        if (c == '\n')
            break;
        set_err(r, "missing CRLF after chunk data");
        return;
    case PH_CHUNK_DATA_LF:
        if (c == '\n')
            break;
        set_err(r, "missing CRLF after chunk data");
        return;
    case PH_TRAILER_START:
        if (c == '\r')
            p->phase = PH_TRAILER_END_LF;
        else if (c == '\n')
            finish(r);
        else
            p->phase = PH_TRAILER_LINE;
        return;
    case PH_TRAILER_LINE:
        if (c == '\n')
            p->phase = PH_TRAILER_START;
        return;
    case PH_TRAILER_END_LF:
        if (c == '\n')
            finish(r);
        else
            set_err(r, "bad chunked trailer (CR not followed by LF)");
        return;
    default:
        return;
    }
    /* End of a chunk's data: the next size line begins. */
    p->phase = PH_CHUNK_SIZE;
    p->left = 0;
    p->chunk_digits = 0;
}

static int state_of(const struct rf_httpres *r)
{
    if (r->priv.phase == PH_DONE)
        return RF_HTTPRES_DONE;
    if (r->priv.phase == PH_ERROR)
        return RF_HTTPRES_ERROR;
    return RF_HTTPRES_MORE;
}

void rf_httpres_init(struct rf_httpres *r, size_t max_size)
{
    memset(r, 0, sizeof(*r));
    r->priv.max_size = max_size ? max_size : RF_HTTPRES_DEFAULT_MAX;
}

int rf_httpres_feed(struct rf_httpres *r, const char *data, size_t len)
{
    size_t i = 0;
    r->extra = 0;
    if (r->priv.max_size == 0)
        r->priv.max_size = RF_HTTPRES_DEFAULT_MAX;
    while (i < len && r->priv.phase != PH_DONE && r->priv.phase != PH_ERROR) {
        switch (r->priv.phase) {
        case PH_HEAD:
            i += feed_head(r, data + i, len - i);
            break;
        case PH_LENGTH:
            i += feed_length(r, data + i, len - i);
            break;
        case PH_CLOSE:
            i += feed_close(r, data + i, len - i);
            break;
        case PH_CHUNK_DATA:
            i += feed_chunk_data(r, data + i, len - i);
            break;
        default:
            if (charge(r, 1)) {
                feed_chunk_byte(r, data[i]);
                i++;
            }
            break;
        }
    }
    if (r->priv.phase == PH_DONE)
        r->extra = len - i;
    return state_of(r);
}

int rf_httpres_eof(struct rf_httpres *r)
{
    switch (r->priv.phase) {
    case PH_DONE:
    case PH_ERROR:
        break;
    case PH_CLOSE:
        r->keep_alive = 0;
        return finish(r);
    case PH_HEAD:
        if (r->priv.consumed == 0)
            return set_err(r, "connection closed before any response");
        return set_err(r, "truncated response: connection closed inside the head");
    case PH_LENGTH:
        return set_err(r, "truncated body: connection closed with %llu bytes missing",
                       (unsigned long long)r->priv.left);
    default:
        return set_err(r, "truncated chunked body: connection closed before last chunk");
    }
    return state_of(r);
}

void rf_httpres_free(struct rf_httpres *r)
{
    free(r->head);
    free(r->body);
    r->head = NULL;
    r->body = NULL;
    r->head_len = 0;
    r->body_len = 0;
    r->priv.head_cap = 0;
    r->priv.body_cap = 0;
}
