# moncae: `make demo` (set up + a short real search) and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/datasets)
export MONCAE_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/moncae datasets

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check moncae cli tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
