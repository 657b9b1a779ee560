/* Fault injection for tests. Release builds link hooks.c compiled plain,
 * where rf_fault() is always 0 and reads nothing. The test binary
 * (build/racefree-test) links the same file compiled with RF_TEST_HOOKS,
 * which reads RACEFREE_FAULTS="name=probability,…" once, e.g.
 * "sqlite.busy=0.3": a named point then fires with that probability
 * ("once": on its first call only). */
#ifndef RF_HOOKS_H
#define RF_HOOKS_H

/* 1 when the fault named `name` should happen now. Thread-safe. Faults
 * fire only on a thread that armed them (the HTTP layer arms them around a
 * handler), so start-up work such as migrations is never hit. */
int rf_fault(const char *name);
void rf_fault_arm(int on);

#endif
