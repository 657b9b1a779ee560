/* What the integration tests share beyond the harness
 * (tests/support/harness.h): burst sizes, and the race bodies that
 * lifecycle.c runs again under injected faults, and every test of list.h. */
#ifndef RF_ITEST_H
#define RF_ITEST_H

#include "../support/harness.h"

/* Servers for the several-process tests: 3 on PostgreSQL, 2 on SQLite. */
#define MULTI (pg_url ? 3 : 2)
/* Each race test fires several independent bursts: a broken build loses
 * some of them by luck of scheduling, never all (measured: see notes). */
#define RACE_ROUNDS 10
#define RACE_IDEM 32
#define RACE_SMALL 32

/* Every test function (list.h). */
#define ITEST(name, fn, race, backend) void fn(void);
#include "list.h"
#undef ITEST

/* users.c, events.c, keys.c */
void race_user_create(int nsrv, int rounds);
void race_event_create(int nsrv, int rounds);
void race_key_identity(int nsrv, int rounds);
void race_verify(int nsrv, int rounds);

#endif
