# Set-up and entry points. `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
STAMP := $(VENV)/.installed

.PHONY: setup setup-base demo test lint bench

# The demo needs only the runtime dependencies; the test extras (pytest, playwright, diffusers, transformers,
# timm, clean-fid, ...) come with `make test`/`make setup`.
$(BASE_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup-base: $(BASE_STAMP)

setup: $(STAMP)

demo: setup-base
	$(BIN)/matbench demo -o demo_out

test: setup
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	MATBENCH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench.py --quick
