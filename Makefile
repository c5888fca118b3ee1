# twinbill: `make run` starts the platform with a live demo; `make test` installs and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9

CONSOLE_VENDOR := services/gateway/src/twinbill_gateway/console/vendor

.PHONY: install lock run test check test-unit test-integration test-openapi-deep lint typecheck bench stack clean browser faults

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installs exactly what requirements.lock pins (the workspace members editable).
$(VENV)/.installed: $(UV) requirements.lock $(wildcard pyproject.toml */*/pyproject.toml)
	$(UV) pip sync --python $(BIN)/python --quiet requirements.lock
	touch $@

# The console's browser libraries, exactly as package-lock.json pins them, copied where the
# gateway serves them (/console/vendor/; not committed, no build step).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(CONSOLE_VENDOR)/.installed: node_modules/.package-lock.json
	mkdir -p $(CONSOLE_VENDOR)
	cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE $(CONSOLE_VENDOR)/
	mkdir -p $(CONSOLE_VENDOR)/swagger-ui
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
		node_modules/swagger-ui-dist/LICENSE node_modules/swagger-ui-dist/NOTICE $(CONSOLE_VENDOR)/swagger-ui/
	touch $@

# The browser tests drive Debian's chromium, with a Chinese font so zh-CN pages render (the
# screenshots are looked at); installed here when missing (needs root, as CI is).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei; fi

# promtool for tests/deploy: Debian's prometheus package unpacked into the venv (no daemon is
# installed or started; kubectl and kubernetes-validate come from PyPI with the lock).
PROMTOOL := $(VENV)/prometheus/usr/bin/promtool
$(PROMTOOL): | $(UV)
	mkdir -p $(VENV)/prometheus
	cd $(VENV)/prometheus && rm -f prometheus_*.deb && \
		{ apt-get download prometheus 2>/dev/null || { apt-get update && apt-get download prometheus; }; }
	dpkg-deb -x $(VENV)/prometheus/prometheus_*.deb $(VENV)/prometheus
	rm -f $(VENV)/prometheus/prometheus_*.deb
	touch $@

install: $(VENV)/.installed $(CONSOLE_VENDOR)/.installed browser $(PROMTOOL)

# Re-pin after changing any pyproject.toml's dependencies.
lock: $(UV)
	$(UV) pip compile --quiet --python $(BIN)/python --universal --no-header requirements.in -o requirements.lock

stack: install
	$(BIN)/twinbill-stack

run: install
	$(BIN)/python -m twinbill_devstack.run

# Lint and strict type checks first (seconds), then every test: in TEST_WORKERS processes
# (pytest-xdist), each test file whole on one of them; each process has its own database,
# embedded MongoDB, Mosquitto and bus namespaces (tests/conftest.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install check
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

test-integration: install
	$(BIN)/python -m pytest -q tests/integration tests/e2e

# schemathesis at depth (make test runs a quick pass): 25 examples per operation, the coverage and
# stateful phases, the gateway's whole merged document; reports in test-artifacts/openapi/.
test-openapi-deep: install
	TWINBILL_SCHEMATHESIS_DEEP=1 $(BIN)/python -m pytest -q -p no:cacheprovider -s tests/e2e/test_openapi.py

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
	rm -rf $(VENV) .stack node_modules $(CONSOLE_VENDOR) test-artifacts
