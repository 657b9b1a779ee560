/* Black-box tests against the real `racefree serve` binary over loopback.
 *
 * Each test gets a fresh database, its own workspaces (made with
 * `racefree workspace create`), and one or more server processes on free
 * ports, started and stopped by PID (tests/support/harness.c). Races are
 * fired with the probe's burst engine: every request is sent but its last
 * byte, then all last bytes go out together. Invariants are checked in the
 * responses, with the probe's expectations, and in the database itself,
 * through the project's own driver layer. The tests live in one file per
 * resource; list.h names them all.
 *
 * usage: itest --bin build/racefree [--repeat N] [--only SUBSTR]
 *              [--pg ADMIN_URL --pg-dir DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "itest.h"

enum { ANY = 0, SQLITE_ONLY = 1, PG_ONLY = 2 };

static const struct {
    const char *name;
    void (*fn)(void);
    int race; /* repeated by --repeat */
    int backend;
} tests[] = {
#define ITEST(name, fn, race, backend) {#name, fn, race, backend},
#include "list.h"
#undef ITEST
};

int main(int argc, char **argv)
{
    const char *only = NULL;
    int repeat = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bin") && i + 1 < argc)
            bin = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pg") && i + 1 < argc)
            pg_url = argv[++i];
        else if (!strcmp(argv[i], "--pg-dir") && i + 1 < argc)
            pg_dir = argv[++i];
        else {
            fprintf(stderr, "usage: itest --bin PATH [--only SUBSTR] [--repeat N]"
                            " [--pg ADMIN_URL --pg-dir DIR]\n");
            return 2;
        }
    }
    /* Bounded: a hung test kills every server and fails the run. */
    if (harness_init((unsigned)(240 + 60 * repeat)) != 0)
        return 2;
    const char *backend = pg_url ? "postgres" : "sqlite";
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        if ((tests[i].backend == SQLITE_ONLY && pg_url) ||
            (tests[i].backend == PG_ONLY && (!pg_url || !pg_dir)))
            continue;
        int runs = tests[i].race ? repeat : 1;
        for (int r = 0; r < runs; r++) {
            uint64_t t0 = rf_mono_ns();
            test_failed = 0;
            tests[i].fn();
            double ms = (double)(rf_mono_ns() - t0) / 1e6;
            if (test_failed) {
                failed++;
                fprintf(stderr, "not ok %s [%s] (run %d) %.0f ms\n", tests[i].name, backend, r + 1,
                        ms);
            } else {
                passed++;
                fprintf(stderr, "ok %s%s %.0f ms\n", tests[i].name, runs > 1 ? " (repeat)" : "",
                        ms);
            }
        }
    }
    harness_fini();
    printf("integration[%s]: %d passed, %d failed\n", backend, passed, failed);
    return failed ? 1 : 0;
}
