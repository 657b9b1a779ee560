#include "core/hooks.h"

#ifndef RF_TEST_HOOKS

int rf_fault(const char *name)
{
    (void)name;
    return 0;
}

void rf_fault_arm(int on)
{
    (void)on;
}

#else

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define MAX_FAULTS 16

static struct {
    char name[48];
    double p; /* probability; < 0: fire exactly once ("once") */
    atomic_int fired;
} faults[MAX_FAULTS];
static int nfaults;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Thread_local int armed;

void rf_fault_arm(int on)
{
    armed = on;
}

static void load(void)
{
    const char *env = getenv("RACEFREE_FAULTS");
    while (env && *env && nfaults < MAX_FAULTS) {
        const char *end = strchr(env, ',');
        size_t len = end ? (size_t)(end - env) : strlen(env);
        const char *eq = memchr(env, '=', len);
        if (eq && (size_t)(eq - env) < sizeof(faults[0].name)) {
            memcpy(faults[nfaults].name, env, (size_t)(eq - env));
            faults[nfaults].name[eq - env] = '\0';
            faults[nfaults].p = strncmp(eq + 1, "once", 4) == 0 ? -1 : strtod(eq + 1, NULL);
            nfaults++;
        }
        env = end ? end + 1 : NULL;
    }
    if (nfaults)
        rf_log(RF_LOG_WARN, "fault injection active: %s", getenv("RACEFREE_FAULTS"));
}

int rf_fault(const char *name)
{
    if (!armed)
        return 0;
    pthread_once(&once, load);
    for (int i = 0; i < nfaults; i++)
        if (strcmp(faults[i].name, name) == 0)
            return faults[i].p < 0 ? atomic_exchange(&faults[i].fired, 1) == 0
                                   : faults[i].p >= 1.0 ||
                                         (faults[i].p > 0 &&
                                          rf_rand_below(1000000) < (uint32_t)(faults[i].p * 1e6));
    return 0;
}

#endif
