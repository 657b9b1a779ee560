# racefree probe: black-box tests, its own unit runner, benchmark.
#   make probe-test      CLI tests against the racy fixture and a real racefree serve
#                        (PROBE_ONLY=SUBSTR: only the tests whose name holds it)
#   make probe-unit      the probe CLI unit tests alone (also under valgrind: probe-unit-valgrind)
#   (its fuzz targets are built and run by mk/fuzz.mk)
#   make probe-bench     arrival-spread benchmark -> bench/probe/RESULTS.md
#   make probe-bench-packet  --sync packet (h2c via nghttpx) beside lastbyte and
#                        Promise.all -> its section of bench/probe/RESULTS.md (root)

.PHONY: probe-test probe-unit probe-unit-valgrind probe-bench probe-bench-packet

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
		tests/unit/test_probe_mixed.c tests/unit/list.probecli.h tests/unit/list.probemixed.h \
		tests/support/testsrv.c tests/support/testsrv.h $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $(BUILD)/probecli-unit/main.c \
		tests/unit/test_probe_cli.c tests/unit/test_probe_mixed.c tests/support/testsrv.c \
		$(LIB_OBJ) $(LDLIBS)

probe-unit: $(BUILD)/probecli-unit/unit
	./$(BUILD)/probecli-unit/unit

probe-unit-valgrind: $(BUILD)/probecli-unit/unit
	valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
		./$(BUILD)/probecli-unit/unit

probe-test: $(BUILD)/racefree $(BUILD)/probe-fixture
	tests/probe/run.sh --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture$(if $(PROBE_ONLY), --only '$(PROBE_ONLY)')

probe-bench: $(BUILD)/racefree $(BUILD)/probe-fixture
	python3 bench/probe/spread.py --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture

probe-bench-packet: $(BUILD)/racefree $(BUILD)/probe-fixture
	python3 bench/probe/packet.py --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture
