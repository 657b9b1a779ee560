# The OpenAPI document: docs/openapi.json is the source of truth, embedded
# into api/openapi.o at build time so GET /openapi.json serves exactly it.
#   make openapi-test    checks the document, the route table, docs/API.md
#                        and a live server against each other
#
# The bytes go into openapi.o itself (an #include of a generated file), not
# into an object of their own: every link of $(LIB_OBJ), including those in
# other mk/*.mk fragments, then gets the document without knowing about it.

OPENAPI_INC := $(BUILD)/gen/openapi_doc.inc

$(OPENAPI_INC): docs/openapi.json scripts/embed.py
	@mkdir -p $(dir $@)
	@echo "  GEN $@"
	@python3 scripts/embed.py --json $< $@

# The problems the document lists, as a C X-macro list that api/openapi.c
# holds core/problems.h to: a code or status that drifts between the two
# stops the build with a compile error (see api/openapi.c). A header the
# compiler checks, rather than a script that reads C: the script only reads
# JSON, and the map is compared as the compiler sees it. A pattern rule, so
# every build directory (build-fuzz/ too, mk/fuzz.mk) makes its own.
%/gen/problems_doc.h: docs/openapi.json scripts/gen-problems-doc.py
	@mkdir -p $(dir $@)
	@echo "  GEN $@"
	@python3 scripts/gen-problems-doc.py $< > $@.tmp && mv $@.tmp $@ || { rm -f $@.tmp; exit 1; }

$(BUILD)/src/api/openapi.o: $(OPENAPI_INC) $(BUILD)/gen/problems_doc.h
$(BUILD)/src/api/openapi.o: ALL_CFLAGS += -I$(BUILD)/gen

.PHONY: openapi-test
openapi-test: $(BUILD)/racefree
	tests/openapi/run.sh --bin ./$(BUILD)/racefree
