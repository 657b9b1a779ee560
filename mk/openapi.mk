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

$(BUILD)/src/api/openapi.o: $(OPENAPI_INC)
$(BUILD)/src/api/openapi.o: ALL_CFLAGS += -I$(BUILD)/gen

.PHONY: openapi-test
openapi-test: $(BUILD)/racefree
	tests/openapi/run.sh --bin ./$(BUILD)/racefree
