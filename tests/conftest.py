"""Shared test setup: quiet TensorFlow, offline data from ../shared/datasets when present."""

from __future__ import annotations

import os
import signal
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("MONCAE_TEST_NO_FSYNC") == "1":  # `make test-fast`: no test can see a durable write,
    os.fsync = lambda fd: None  # and this machine's fsyncs took ~12 s of its ~42 s (tests/test_atomic.py)
# A test run started with SIGINT or SIGHUP ignored (a background job of a script, `nohup`) would
# pass that on to every process it starts; the tests of Ctrl-C and of a closed terminal check the
# usual case, so they start from it (a helper's audit: five of them failed there).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if SHARED_DATA.is_dir():
    os.environ.setdefault("MONCAE_DATA_DIR", str(SHARED_DATA))


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    """A small user dataset (16x16x1, 96 train / 32 test images): loads in milliseconds."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (96, 16, 16), dtype=np.uint8),
             y_train=rng.integers(0, 10, 96), x_test=rng.integers(0, 256, (32, 16, 16), dtype=np.uint8),
             y_test=rng.integers(0, 10, 32))
    return path


@pytest.fixture
def stub_config(tiny_npz, tmp_path):
    """Settings for a search on `tiny_npz` with the surrogate evaluator (no Keras): call it with
    overrides; results go under a fresh tmp_path folder."""
    from moncae.config import resolve_config

    def make(out: Path | None = None, **overrides):
        settings = {"generations": 4, "population": 8, "max_blocks": 4, "max_filters": 32,
                    "elitism": 0.25, **overrides}
        return resolve_config(dataset=str(tiny_npz), seed=overrides.pop("seed", 3),
                              out=str(out or tmp_path), **{k: v for k, v in settings.items() if k != "seed"})

    return make


SLOW_MODULE_MARK = "pytestmark = pytest.mark.slow"


def pytest_ignore_collect(collection_path, config):
    """With `-m "not slow"`, do not even import a module whose every test is slow (those import
    TensorFlow, which alone costs seconds)."""
    if config.getoption("markexpr", "") != "not slow" or collection_path.suffix != ".py":
        return None
    if collection_path.name.startswith("test_") and SLOW_MODULE_MARK in collection_path.read_text():
        return True
    return None


SMOKE_SEED = 5


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A finished real smoke search (mnist_5k, seed `SMOKE_SEED`, the preset's settings), trained
    once for every module that reads one. Never modified: a test that changes a run copies it."""
    from moncae.config import resolve_config
    from moncae.search.loop import run_search

    out = tmp_path_factory.mktemp("smoke")
    return run_search(resolve_config(preset="smoke", dataset="mnist_5k", seed=SMOKE_SEED, out=str(out)))
