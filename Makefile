# twinbill: `make run` starts the platform with a live demo; `make test` installs and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9

.PHONY: install lock run test check test-unit test-integration lint typecheck bench stack clean faults

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installs exactly what requirements.lock pins (the workspace members editable).
$(VENV)/.installed: $(UV) requirements.lock $(wildcard pyproject.toml */*/pyproject.toml)
	$(UV) pip sync --python $(BIN)/python --quiet requirements.lock
	touch $@

install: $(VENV)/.installed

# Re-pin after changing any pyproject.toml's dependencies.
lock: $(UV)
	$(UV) pip compile --quiet --python $(BIN)/python --universal --no-header requirements.in -o requirements.lock

stack: install
	$(BIN)/twinbill-stack

run: install
	$(BIN)/python -m twinbill_devstack.run

# Lint and strict type checks first (seconds), then every test.
test: install check
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

test-integration: install
	$(BIN)/python -m pytest -q tests/integration tests/e2e

check: lint typecheck

lint: install
	$(BIN)/ruff check libs services tools clients tests bench

# One run over everything: mypy resolves the workspace packages consistently only together.
typecheck: install
	$(BIN)/mypy libs/common/src services/*/src tools/*/src clients/python/src tests bench

# The fault campaign (issue 17) on a private stack; FAULTS_ARGS="--short" or "--repeat 1 --only kill-twin".
faults: install
	$(BIN)/python -m twinbill_faults $(FAULTS_ARGS)

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .stack
