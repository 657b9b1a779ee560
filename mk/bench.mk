# Benchmarks of issues 3, 5 and 7 (bench/run; it writes bench/RESULTS.md and
# bench/results.json).
#   make bench              every benchmark; BENCH_RUNS (3) and BENCH_DURATION
#                           (5 s) pass through, as do the other BENCH_* knobs
#   make bench-ref          the C reference programs alone

.PHONY: bench bench-ref

# Linked against the same libsqlite3 as racefree (pkg-config), built -O2
# like racefree, so the comparison is of the code around SQLite.
$(BUILD)/bench/sqlite_insert: bench/ref/sqlite_insert.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CSTD) $(WARN) -O2 -g $(shell pkg-config --cflags sqlite3) -o $@ $< \
		$(shell pkg-config --libs sqlite3) -lpthread

bench-ref: $(BUILD)/bench/sqlite_insert

# deps first, as make test does: wrk, nginx and PostgreSQL come from there.
bench: deps
	$(MAKE) -s -j2 BUILD=$(BUILD) all bench-ref
	BENCH_BUILD=$(BUILD) BENCH_SKIP_BUILD=1 BENCH_COMMAND='make bench' bench/run
