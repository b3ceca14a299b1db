# The two commands of the quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint metadata lwc unit bench reliability clean protos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the project's metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orderflow demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: lint metadata lwc
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

# The Salesforce CLI's own library (package.json) converts salesforce/metadata as a deploy
# would: any error fails the build. .ci/run installs it; here only when it is missing.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

metadata: node_modules/.package-lock.json
	node salesforce/metadata/check.mjs

# The Lightning web components' Jest tests (@salesforce/sfdx-lwc-jest, salesforce/metadata).
lwc: node_modules/.package-lock.json
	npm run --silent test:lwc

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Figures, not tests: each prints its table (docs/BENCHMARKS.md records the latest).
bench: $(STAMP)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.api_economy
	$(BIN)/python -m bench.demo_calls
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.resync_memory
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.long_runs
	$(BIN)/python -m bench.latency

# SIGKILL and restart, faults on every link, the bad-input corpus, hostile downstream
# answers, go-live on 2,000 historic orders (short runs: make test).
reliability: $(STAMP)
	$(BIN)/python -m reliability.crash
	$(BIN)/python -m reliability.faults
	$(BIN)/python -m reliability.bad_inputs
	$(BIN)/python -m reliability.hostile_downstream
	$(BIN)/python -m reliability.golive

clean:
	rm -rf $(VENV) node_modules .demo .mypy_cache .ruff_cache .pytest_cache

# salesforce/pubsub's gRPC stubs, from Salesforce's Pub/Sub API .proto (committed: the build
# needs no protoc; tests/unit/test_pubsub_changed_fields.py checks they match the .proto).
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		salesforce/pubsub/pubsub_api.proto
