# Set-up and entry points. `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/matbench demo -o demo_out

test: setup
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	MATBENCH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench.py --quick
