#include <stdio.h>

#include "probe/probe.h"

int rf_probe_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "racefree probe: not built yet\n");
    return 2;
}
