/* Unit test runner: runs every test in list.h, prints one line per failure
 * and ends with "N passed, N failed". Exit status 1 if any failed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../support/fail.h"
#include "unit.h"

#define UNIT(n) void n(void);
#include "list.h"
#undef UNIT

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define UNIT(n) {#n, n},
#include "list.h"
#undef UNIT
};

static int failed_current;

TEST_FAIL_FN(unit_fail, failed_current)

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        failed_current = 0;
        tests[i].fn();
        if (failed_current) {
            fprintf(stderr, "not ok %s\n", tests[i].name);
            failed++;
        } else {
            passed++;
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
