/* The failure line every C test runner prints: "  FAIL file:line: why". */
#ifndef RF_TEST_FAIL_H
#define RF_TEST_FAIL_H

#include <stdarg.h>
#include <stdio.h>

static inline void test_vfail(const char *file, int line, const char *fmt, va_list ap)
{
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* Defines the runner's fail(file, line, fmt, ...), which also sets flag:
 * one body for every runner. */
#define TEST_FAIL_FN(name, flag)                                                                   \
    void name(const char *file, int line, const char *fmt, ...)                                    \
    {                                                                                              \
        va_list ap;                                                                                \
        flag = 1;                                                                                  \
        va_start(ap, fmt);                                                                         \
        test_vfail(file, line, fmt, ap);                                                           \
        va_end(ap);                                                                                \
    }

#endif
