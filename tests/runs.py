"""Helpers for the tests that crash a surrogate search after some trainings, resume it and compare
its CSVs with an uninterrupted run. Not a test module: the tests import it (`from tests.runs import`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from moncae.evaluation.records import EvalResult
from moncae.evaluation.surrogate import surrogate_task
from moncae.search.loop import SearchProgress, run_search

CSVS = ("evaluations.csv", "population.csv", "generations.csv", "pareto_front.csv")
WITH_INDEX = (*CSVS, "models/index.csv")  # and the index of the final models
TEXT = {"error": str, "failure": str}  # a `dtype` for the journal's text columns, read as text


def read(run_dir: Path, name: str, dtype=None) -> pd.DataFrame:
    """A run's CSV without its timing columns (which differ from run to run)."""
    df = pd.read_csv(run_dir / name, dtype=dtype)
    return df.drop(columns=[c for c in ("fit_seconds", "seconds") if c in df.columns])


def assert_same(a: Path, b: Path, names=CSVS, dtype=None) -> None:
    """The two runs' CSVs `names` are equal to the bit, timings aside."""
    for name in names:
        pd.testing.assert_frame_equal(read(a, name, dtype), read(b, name, dtype), check_exact=True)


def with_model(task):
    """The surrogate, plus a stand-in model file (so the run has models to save)."""
    return EvalResult(surrogate_task(task).record, b"model bytes")


class Messages(SearchProgress):
    """A progress that keeps the search's messages (`lines`)."""

    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


class Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing catches it or records a failed training."""


def crashing_after(n, task_fn=surrogate_task):
    """`task_fn` that raises Crash instead of its training number `n + 1` (after `n` trainings)."""
    calls = 0

    def task(t):
        nonlocal calls
        if calls == n:
            raise Crash
        calls += 1
        return task_fn(t)

    return task


def resume_after_crash(config, n, task_fn=surrogate_task, must_crash=True):
    """Runs the search crashing after `n` trainings, then resumes it; returns the last result.
    With `must_crash=False` a search that finishes before the crash is not resumed."""
    try:
        result = run_search(config, task_fn=crashing_after(n, task_fn))
    except Crash:
        return run_search(config, resume=True, task_fn=task_fn)
    if must_crash:
        pytest.fail(f"the search finished in fewer than {n + 1} trainings: no crash")
    return result
