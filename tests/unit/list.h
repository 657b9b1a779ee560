/* Every unit test, in the order they run. */
UNIT(test_email_normalize)
UNIT(test_email_invalid)
UNIT(test_username_rules)
UNIT(test_name_rules)
UNIT(test_base58_and_ids)
UNIT(test_arena_limit)
UNIT(test_utf8_printable)
UNIT(test_time_parse)
UNIT(test_sqlite_classify_codes)
UNIT(test_sqlite_real_busy)
UNIT(test_sqlite_driver_unique)
UNIT(test_tx_run_retries_then_gives_up)
UNIT(test_json_parse_object)
UNIT(test_json_parse_errors)
UNIT(test_input_check)
UNIT(test_route_match)
UNIT(test_if_match_parse)
/* The order files run in; clang-format must not sort it. */
/* clang-format off */
#include "list.probe.h"
#include "list.slug.h"
#include "list.pg.h"
#include "list.probecli.h"
#include "list.probeh2.h"
#include "list.metrics.h"
#include "list.groupcommit.h"
#include "list.probehtml.h"
#include "list.pool.h"
/* clang-format on */
