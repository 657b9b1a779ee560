/* What every libFuzzer target in tests/fuzz/ shares, so that a target is
 * only its LLVMFuzzerTestOneInput and the invariants it checks.
 *
 * CHECK aborts rather than returning: libFuzzer keeps the input that made
 * a process die (in FUZZ_DIR/artifacts/), and tests/fuzz/run.sh greps the
 * log for "invariant failed" to show which one broke. */
#ifndef RF_TESTS_FUZZ_H
#define RF_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry point; declared here since no system header does, and
 * -Wmissing-prototypes would refuse its definition otherwise. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
