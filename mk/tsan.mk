# ThreadSanitizer: a separate build (build-tsan/) of the server and its
# tests, running the concurrency tests.
#   make test-tsan     build, then: a self-check that TSan reports here at
#                      all, the unit tests that run threads (TSAN_UNIT:
#                      SQLite busy/group commit, tx retries, metrics, the
#                      burst engine and in-process probe runs), and every
#                      integration test named race* or concurrent* (bursts
#                      fired at `racefree serve`, which is the TSan-built
#                      binary). Ends "N passed, N failed".
# The single-threaded unit tests are left out: TSan has nothing to find
# there, and its interceptors make some (strstr over megabytes of HTML)
# take minutes.
# Every instrumented process (itest, each serve it starts, unit) inherits
# TSAN_OPTIONS and writes any report to TSAN_LOGS/tsan.<pid>; the run fails
# when one exists, even if the test that provoked it passed. Suppressions:
# tests/tsan.supp (third-party code only, each with its reason).
# TSAN_PG_URL=admin URL TSAN_PG_DIR=cluster dir (scripts/pg.sh) adds the race
# tests on PostgreSQL (the coalesced creates, the pool, reconnects).

TSAN_BUILD  ?= build-tsan
TSAN_LOGS   := $(abspath $(TSAN_BUILD))/tsan-logs
TSAN_TESTS  ?= race concurrent_start stop_with
TSAN_UNIT   ?= test_sqlite_ test_tx_run test_metrics_concurrent test_burst_ test_probecli_run_ test_pool_
TSAN_ENV     = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
               log_path=$(TSAN_LOGS)/tsan suppressions=$(abspath tests/tsan.supp)"

.PHONY: test-tsan tsan-build

tsan-build:
	@$(MAKE) -s BUILD=$(TSAN_BUILD) CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" \
		LDFLAGS=-fsanitize=thread check

# A run that cannot fail proves nothing: first a two-line data race must
# produce a report through the same options, then the real tests.
test-tsan: tsan-build
	@rm -rf $(TSAN_LOGS) $(TSAN_BUILD)/tsan-selfcheck-logs; mkdir -p $(TSAN_LOGS) \
		$(TSAN_BUILD)/tsan-selfcheck-logs; \
	pass=0; fail=0; start=$$(date +%s); \
	printf '#include <pthread.h>\nstatic int n;\nstatic void *f(void *p) { n++; return p; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); n++; pthread_join(t, 0); return n == 0; }\n' \
		| $(CC) -x c -O1 -g -fsanitize=thread -o $(TSAN_BUILD)/tsan-selfcheck - -lpthread; \
	TSAN_OPTIONS="exitcode=66 log_path=$(abspath $(TSAN_BUILD))/tsan-selfcheck-logs/tsan" \
		./$(TSAN_BUILD)/tsan-selfcheck; \
	if [ $$? -eq 66 ] && grep -q 'data race' $(TSAN_BUILD)/tsan-selfcheck-logs/tsan.* 2>/dev/null; then \
		pass=$$((pass + 1)); echo "ok tsan self-check: a planted race is reported"; \
	else fail=$$((fail + 1)); echo "not ok tsan self-check: a planted race went unreported"; fi; \
	summary() { \
		p=$$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$$/\1/p' $$1 | tail -1); \
		f=$$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$$/\2/p' $$1 | tail -1); \
		if [ -z "$$p" ]; then p=0; f=1; echo "not ok $$2: no summary"; tail -20 $$1; \
		elif [ "$$f" -gt 0 ]; then grep -E '^not ok|FAIL' $$1 | head -20; fi; \
		echo "  $$2: $$p passed, $$f failed"; \
		pass=$$((pass + p)); fail=$$((fail + f)); }; \
	for t in $(TSAN_UNIT); do \
		$(TSAN_ENV) ./$(TSAN_BUILD)/unit $$t > $(TSAN_BUILD)/tsan-unit-$$t.log 2>&1; \
		summary $(TSAN_BUILD)/tsan-unit-$$t.log "unit $$t"; \
	done; \
	for t in $(TSAN_TESTS); do \
		$(TSAN_ENV) ./$(TSAN_BUILD)/itest --bin ./$(TSAN_BUILD)/racefree --only $$t \
			> $(TSAN_BUILD)/tsan-itest-$$t.log 2>&1; \
		grep -E '^(not )?ok ' $(TSAN_BUILD)/tsan-itest-$$t.log; \
		summary $(TSAN_BUILD)/tsan-itest-$$t.log "itest --only $$t"; \
	done; \
	if [ -n "$(TSAN_PG_URL)" ]; then \
		$(TSAN_ENV) ./$(TSAN_BUILD)/itest --bin ./$(TSAN_BUILD)/racefree --only race \
			--pg "$(TSAN_PG_URL)" --pg-dir "$(TSAN_PG_DIR)" > $(TSAN_BUILD)/tsan-itest-pg.log 2>&1; \
		grep -E '^(not )?ok ' $(TSAN_BUILD)/tsan-itest-pg.log; \
		summary $(TSAN_BUILD)/tsan-itest-pg.log "itest --only race on PostgreSQL"; \
	fi; \
	reports=$$(ls $(TSAN_LOGS) | wc -l); \
	if [ $$reports -gt 0 ]; then \
		fail=$$((fail + 1)); echo "not ok tsan: $$reports report(s) in $(TSAN_LOGS):"; \
		for r in $(TSAN_LOGS)/*; do echo "== $$r"; head -60 $$r; done; \
	else pass=$$((pass + 1)); echo "ok tsan: no reports from any instrumented process"; fi; \
	echo "tsan ($$(($$(date +%s) - start)) s): $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]
