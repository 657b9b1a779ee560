# racefree probe: black-box tests, its own unit runner, fuzzers, benchmark.
#   make probe-test      CLI tests against the racy fixture and a real racefree serve
#   make probe-unit      the probe CLI unit tests alone (also under valgrind: probe-unit-valgrind)
#   make fuzz            libFuzzer on the HTTP response reader and the CLI parsers,
#                        FUZZ_SECONDS each (default 60)
#   make probe-bench     arrival-spread benchmark -> bench/probe/RESULTS.md

FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all $(shell pkg-config --cflags jansson libsodium)
FUZZ_LIBS    := $(shell pkg-config --libs jansson libsodium)

.PHONY: probe-test probe-unit probe-unit-valgrind fuzz fuzz-build probe-bench

# The fixture is the test's instrument, not code under test: always built
# optimised and without sanitizers, whose slow thread start-up would blur
# the race it must show.
$(BUILD)/probe-fixture: tests/fixtures/racy_server.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -o $@ $< -lpthread

# A runner of only the probe CLI tests: main.c next to a list.h of our own,
# since main.c includes "list.h" from its own directory first.
$(BUILD)/probecli-unit/main.c: tests/unit/main.c
	@mkdir -p $(dir $@)
	cp $< $@
	printf '#include "list.probecli.h"\n' > $(dir $@)list.h

$(BUILD)/probecli-unit/unit: $(BUILD)/probecli-unit/main.c tests/unit/test_probe_cli.c \
		tests/unit/list.probecli.h $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $(BUILD)/probecli-unit/main.c \
		tests/unit/test_probe_cli.c $(LIB_OBJ) $(LDLIBS)

probe-unit: $(BUILD)/probecli-unit/unit
	./$(BUILD)/probecli-unit/unit

probe-unit-valgrind: $(BUILD)/probecli-unit/unit
	valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
		./$(BUILD)/probecli-unit/unit

probe-test: $(BUILD)/racefree $(BUILD)/probe-fixture
	tests/probe/run.sh --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture

FUZZ_TARGETS := build/fuzz/httpres_fuzz build/fuzz/probe_parse_fuzz

build/fuzz/httpres_fuzz: fuzz/httpres_fuzz.c src/probe/httpres.c src/probe/httpres.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/httpres_fuzz.c src/probe/httpres.c

build/fuzz/probe_parse_fuzz: fuzz/probe_parse_fuzz.c src/probe/template.c src/probe/expect.c \
		src/probe/request.c src/probe/httpres.c src/core/util.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/probe_parse_fuzz.c src/probe/template.c \
		src/probe/expect.c src/probe/request.c src/probe/httpres.c src/core/util.c $(FUZZ_LIBS)

fuzz-build: $(FUZZ_TARGETS)

# Runs each target for FUZZ_SECONDS on a scratch copy of its seed corpus.
fuzz: $(FUZZ_TARGETS)
	@for t in httpres_fuzz probe_parse_fuzz; do \
		seed=fuzz/corpus/$${t%_fuzz}; work=build/fuzz/corpus-$$t; \
		mkdir -p $$work; cp -n $$seed/* $$work/ 2>/dev/null; \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
		./build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=build/fuzz/$$t- $$work || exit 1; \
	done

probe-bench: $(BUILD)/racefree $(BUILD)/probe-fixture
	python3 bench/probe/spread.py --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture
