# The two commands of the README: `make run` and `make test`.
# Both create .venv with the project and its dependencies when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIM_STAMP := $(VENV)/.manim
PYTEST_WORKERS ?= 2

.PHONY: run test lint unit integration e2e browser contract load bench clean debs chromium \
	manim cairo-debs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: set up, migrate and run vq (embedded PostgreSQL unless VQ_DATABASE_URL is set)
run: $(STAMP)
	$(BIN)/vq run

## test: set up and run every check: lint, types, layers, unit, integration, contract, browser, e2e
# Screenshots of the admin page go to test-artifacts/ here; `tox -e browser` renews
# the ones in docs/screenshots.
test: $(STAMP) chromium manim lint
	VQ_SCREENSHOT_DIR=$(CURDIR)/test-artifacts/screenshots \
	  $(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests contract_tests

lint: $(STAMP)
	$(BIN)/ruff check vq_core vq_plugins vq_ui tests contract_tests load
	$(BIN)/mypy
	$(BIN)/lint-imports

# The tests by what they cost: no database, real PostgreSQL, processes and a browser.
unit: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/integration

e2e: $(STAMP) chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/e2e

browser: $(STAMP) chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/e2e/browser

contract: $(STAMP)
	$(BIN)/python -m pytest contract_tests

# Tests need Debian's Chromium and ChromeDriver (browsers cannot be downloaded), and
# Prometheus (promtool and a real server) and PgBouncer for the deployment tests.
# Each is installed only when its command is missing.
DEBS := chromium:chromium chromedriver:chromium-driver promtool:prometheus prometheus:prometheus \
	pgbouncer:pgbouncer
debs:
	@missing=""; for pair in $(DEBS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (sudo apt-get install -y$$missing)" >&2; exit 1; \
	  fi; \
	fi

chromium: debs

# Manim CE for the reference Manim service: pycairo and ManimPango build against Debian's
# Pango and Cairo headers, found through pkg-config (the libraries have no command to
# look for). `make run` does not need them: without Manim that service renders with PyAV.
CAIRO_DEBS := libpango1.0-dev libcairo2-dev pkg-config
cairo-debs:
	@if ! pkg-config --exists pangocairo cairo 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CAIRO_DEBS)) >/dev/null; \
	  else \
	    echo "missing Debian packages: $(CAIRO_DEBS) (sudo apt-get install -y $(CAIRO_DEBS))" >&2; exit 1; \
	  fi; \
	fi

# Order-only on cairo-debs: checked every time, reinstalled only when the venv changed.
$(MANIM_STAMP): $(STAMP) | cairo-debs
	$(BIN)/python -m pip install --quiet -e '.[dev,manim]'
	@touch $(MANIM_STAMP)

## manim: the manim extra in .venv (as root, also the Debian packages it builds with)
manim: $(MANIM_STAMP)

bench: $(STAMP)
	$(BIN)/python load/bench_queue.py
	$(BIN)/python load/bench_claim.py
	$(BIN)/python load/bench_cli.py

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache
