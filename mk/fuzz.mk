# libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) for every
# parser that takes hostile input: tests/fuzz/*_fuzz.c, seeds in
# tests/fuzz/corpus/<target>/.
#   make fuzz              every target for FUZZ_SECONDS each (default 60)
#   make fuzz-ci           every target for FUZZ_CI_SECONDS each (default 20): CI's budget
#   make fuzz-build        only build them (into FUZZ_DIR, default build-fuzz/)
#   make fuzz-one FUZZ_TARGET=slug_fuzz   one target, FUZZ_SECONDS
# A crash leaves its input in FUZZ_DIR/artifacts/; replay it with
#   ./build-fuzz/<target> FUZZ_DIR/artifacts/<file>
# and turn it into a regression test (tests/unit/test_fuzz_regress.c).

FUZZ_CC         ?= clang-14
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 20
FUZZ_DIR        ?= build-fuzz
FUZZ_SAN        := -fsanitize=address,undefined -fno-sanitize-recover=all
# The library objects carry coverage instrumentation only; libFuzzer's main
# is linked once, into each target. The gcc build already holds the code to
# WARN; clang-14 also flags va_list forwarding in static helpers that gcc
# accepts (-Wformat-nonliteral), which is not worth a second convention.
FUZZ_CFLAGS     := $(CSTD) $(WARN) -Wno-format-nonliteral -g -O1 -fno-omit-frame-pointer -Isrc $(FUZZ_SAN) \
                   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
FUZZ_NAMES      := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*_fuzz.c))
FUZZ_BINS       := $(FUZZ_NAMES:%=$(FUZZ_DIR)/%)
FUZZ_LIB_OBJ    := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)

.PHONY: fuzz fuzz-ci fuzz-build fuzz-one

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/%_fuzz: $(FUZZ_DIR)/obj/tests/fuzz/%_fuzz.o $(FUZZ_LIB_OBJ)
	@echo "  FUZZLD $@"
	@$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# api/openapi.c embeds docs/openapi.json (see mk/openapi.mk), generated
# here into our own directory.
$(FUZZ_DIR)/gen/openapi_doc.inc: docs/openapi.json scripts/embed.py
	@mkdir -p $(dir $@)
	@python3 scripts/embed.py --json $< $@
$(FUZZ_DIR)/obj/src/api/openapi.o: $(FUZZ_DIR)/gen/openapi_doc.inc $(FUZZ_DIR)/gen/problems_doc.h
$(FUZZ_DIR)/obj/src/api/openapi.o: FUZZ_CFLAGS += -I$(FUZZ_DIR)/gen

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-ci: $(FUZZ_BINS)
	@tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds $(FUZZ_CI_SECONDS) $(FUZZ_NAMES)

fuzz-one: $(FUZZ_DIR)/$(FUZZ_TARGET)
	@tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds $(FUZZ_SECONDS) $(FUZZ_TARGET)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_NAMES:%=$(FUZZ_DIR)/obj/tests/fuzz/%.d)
