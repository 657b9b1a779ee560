/* racefree probe: the command-line race prober (docs/PROBE.md). */
#ifndef RF_PROBE_H
#define RF_PROBE_H

#include <stdio.h>

/* argv[0] is "probe". Returns the process exit code: 0 all expectations
 * held, 1 one failed, 2 usage or connection error. */
int rf_probe_main(int argc, char **argv);

/* rf_probe_main with the report going to out and messages to err, so tests
 * can capture both. getopt state is reset on entry; argv may be permuted. */
int rf_probe_run(int argc, char **argv, FILE *out, FILE *err);

#endif
