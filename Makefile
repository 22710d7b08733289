# Two commands do everything on a fresh Debian 12 machine (root):
#   make verify   set up, fetch the default tree, verify the series
#   make check    set up, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Node programs the tests run (tools/node/package-lock.json pins them): gitlab-ci-local
NODE   := tools/node
NODE_STAMP := $(NODE)/node_modules/.installed

.PHONY: setup deps tree verify check test lint bench clean

setup: deps $(STAMP) $(NODE_STAMP)

deps:
	bash tools/install-deps.sh

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

$(NODE_STAMP): $(NODE)/package-lock.json
	npm ci --prefix $(NODE) --no-audit --no-fund --loglevel=error
	touch $@

tree: setup
	$(BIN)/kseries tree

# Exit 250 is "warnings only" (NIPA's retcode): the report says which; make does not fail on it.
verify: tree
	$(BIN)/kseries verify || [ $$? -eq 250 ]

check: tree
	$(BIN)/ruff check tools tests
	$(BIN)/mypy tools/kseries tools/bench
	$(BIN)/python -m pytest -q --durations=30 tests

# The fast tier for the inner loop: no kernel tree, no kernel builds (about three minutes here).
test: setup
	$(BIN)/ruff check tools tests
	$(BIN)/mypy tools/kseries tools/bench
	$(BIN)/python -m pytest -q -m "not realtree" tests

lint: setup
	$(BIN)/ruff check tools tests
	$(BIN)/mypy tools/kseries tools/bench

bench: tree
	$(BIN)/python -m tools.bench $(SECTIONS)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
