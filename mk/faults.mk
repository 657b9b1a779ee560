# Fault tests (docs/ARCHITECTURE.md, Operating): kill -9 under load on SQLite and
# PostgreSQL, PostgreSQL stopped and started under load, SQLite on a full disk and
# locked by another process.
#   make test-faults              KILLS kills per backend (default 100)
#   make test-faults KILLS=1000   a longer run; SEED=N replays a request mix

KILLS ?= 100

.PHONY: test-faults

test-faults: $(BUILD)/racefree
	KILLS=$(KILLS) tests/faults/run.sh --bin ./$(BUILD)/racefree
