/* racefree probe: the command-line race prober (SPEC §4). */
#ifndef RF_PROBE_H
#define RF_PROBE_H

/* argv[0] is "probe". Returns the process exit code: 0 all expectations
 * held, 1 one failed, 2 usage or connection error. */
int rf_probe_main(int argc, char **argv);

#endif
