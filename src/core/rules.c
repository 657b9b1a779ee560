#include "core/rules.h"

#include <string.h>
#include <strings.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int rf_email_normalize(const char *in, size_t len, char *out, size_t outlen)
{
    while (len && is_space(in[0])) {
        in++;
        len--;
    }
    while (len && is_space(in[len - 1]))
        len--;
    if (len == 0 || len > RF_EMAIL_MAX || outlen < len + 1 || !rf_utf8_printable(in, len))
        return -1;
    size_t at = len, ats = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        /* Control characters, spaces and DEL have no place in an address and
         * would make two spellings of one mailbox. */
        if (c < 0x21 || c == 0x7f)
            return -1;
        if (c == '@') {
            at = i;
            ats++;
        }
        out[i] = lower((char)c);
    }
    out[len] = '\0';
    if (ats != 1 || at == 0 || at == len - 1)
        return -1;
    return 0;
}

static const char *const reserved[] = {
    "admin", "root",          "api",    "www",      "support", "help",   "settings", "new",
    "me",    "administrator", "system", "racefree", "login",   "logout", "signup",   "null",
};

enum rf_username_check rf_username_check(const char *s, size_t len)
{
    if (len == 0 || len > RF_USERNAME_MAX || s[0] == '-' || s[len - 1] == '-')
        return RF_USERNAME_INVALID;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || (c == '-' && s[i + 1] == '-'))
            return RF_USERNAME_INVALID;
    }
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && strncasecmp(reserved[i], s, len) == 0)
            return RF_USERNAME_RESERVED;
    return RF_USERNAME_OK;
}

void rf_username_key(const char *s, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = lower(s[i]);
    out[len] = '\0';
}

int rf_name_check(const char *s, size_t len)
{
    if (len == 0 || len > RF_NAME_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
    }
    return 0;
}

int rf_utf8_printable(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (i + n >= len) /* truncated sequence */
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0))
            return 0;
        i += n + 1;
    }
    return 1;
}
