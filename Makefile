# racefree — build, run, test.
#   make            build/racefree
#   make run        deps + build + serve on sqlite:./racefree.db
#   make test       deps + build + every test (normal build, then ASan+UBSan)
#   make SAN=1      sanitizer build into build-san/

CC      ?= cc
PKGS    := libmicrohttpd jansson sqlite3 libsodium libpq openssl libnghttp2
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP

LIB_SRC   := $(filter-out src/main.c,$(wildcard src/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/*.c) tests/support/testsrv.c
UNIT_OBJ  := $(UNIT_SRC:%.c=$(BUILD)/%.o)
ITEST_SRC := $(wildcard tests/integration/*.c) tests/support/harness.c
ITEST_OBJ := $(ITEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps run test check unit itest san-test valgrind clean format format-check

all: $(BUILD)/racefree

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# Objects are linked directly (no archive): a renamed source can never leave
# a stale object behind in the link.
$(BUILD)/racefree: $(BUILD)/src/main.o $(LIB_OBJ)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The test binary: the same objects, with fault-injection hooks live.
$(BUILD)/src/core/hooks-test.o: src/core/hooks.c
	@mkdir -p $(dir $@)
	@echo "  CC $< (test hooks)"
	@$(CC) $(ALL_CFLAGS) -DRF_TEST_HOOKS -c $< -o $@

$(BUILD)/racefree-test: $(BUILD)/src/main.o $(BUILD)/src/core/hooks-test.o \
                        $(filter-out %/hooks.o,$(LIB_OBJ))
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit: $(UNIT_OBJ) $(LIB_OBJ)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/itest: $(ITEST_OBJ) $(LIB_OBJ)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	./scripts/deps.sh

run: deps
	$(MAKE) all
	./$(BUILD)/racefree serve --db sqlite:./racefree.db

# Every test, as CI runs it: unit + integration on the normal build, the same
# under ASan+UBSan, and the unit tests under valgrind. Ends with one summary line.
# ONLY=NAME[,NAME…] or ONLY=SUITE:TEST runs just those (scripts/test.sh --only;
# --list names the suites).
test: deps
	./scripts/test.sh$(if $(ONLY), --only '$(ONLY)')

check: $(BUILD)/racefree $(BUILD)/racefree-test $(BUILD)/unit $(BUILD)/itest

unit: $(BUILD)/unit
	./$(BUILD)/unit

itest: $(BUILD)/racefree $(BUILD)/racefree-test $(BUILD)/itest
	./$(BUILD)/itest --bin ./$(BUILD)/racefree

clean:
	rm -rf build build-san

# What git tracks (outside a checkout, what is there), so that a scratch file
# never fails the check.
FORMAT_FILES = $(or $(shell git ls-files 'src/*.[ch]' 'tests/*.[ch]' 2>/dev/null), \
                    $(wildcard src/*.c src/*/*.[ch] tests/*/*.[ch]))

format:
	clang-format -i $(FORMAT_FILES)

# CI's check (scripts/test.sh runs it first): every file as .clang-format has it.
format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format: $(words $(FORMAT_FILES)) files ok"

# Optional fragments (fuzzers, benchmarks) live in mk/*.mk.
-include mk/*.mk

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(ITEST_OBJ:.o=.d) $(BUILD)/src/main.d
