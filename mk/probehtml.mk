# racefree probe --report: the HTML report's own tests.
#   make probe-html-unit   its unit tests alone (they also run in `make unit`)
#   make probe-html-test   tests/probe/report_html.sh: a real burst rendered in
#                          headless Chromium (screenshot kept, see the script)

.PHONY: probe-html-unit probe-html-test

# Same trick as probecli-unit: main.c next to a list.h of our own.
$(BUILD)/probehtml-unit/main.c: tests/unit/main.c
	@mkdir -p $(dir $@)
	cp $< $@
	printf '#include "list.probehtml.h"\n' > $(dir $@)list.h

$(BUILD)/probehtml-unit/unit: $(BUILD)/probehtml-unit/main.c tests/unit/test_probe_html.c \
		tests/unit/list.probehtml.h tests/support/testsrv.c tests/support/testsrv.h $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $(BUILD)/probehtml-unit/main.c \
		tests/unit/test_probe_html.c tests/support/testsrv.c $(LIB_OBJ) $(LDLIBS)

probe-html-unit: $(BUILD)/probehtml-unit/unit
	./$(BUILD)/probehtml-unit/unit

probe-html-test: $(BUILD)/racefree $(BUILD)/probe-fixture
	tests/probe/report_html.sh --bin ./$(BUILD)/racefree --fixture ./$(BUILD)/probe-fixture
