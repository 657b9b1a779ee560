/* Minimal unit-test harness: tests are void functions listed in list.h.
 * A failing CHECK records file:line and returns from the test. */
#ifndef RF_UNIT_H
#define RF_UNIT_H

#include <stdint.h>
#include <string.h>

void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            unit_fail(__FILE__, __LINE__, "%s", #c);                                               \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            unit_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #a, a_, b_);                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            unit_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #a, a_ ? a_ : "(null)",     \
                      b_ ? b_ : "(null)");                                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
