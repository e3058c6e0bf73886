"""The benchmark scripts' command lines: `--help` works, and nonsense (a count below 1, an unknown
dataset or preset) is one `error:` line with exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Each case starts a Python that imports moncae (some scripts TensorFlow too): seconds each.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=BENCH.parent)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_explains_itself(script):
    result = _run(f"bench/{script}", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr


@pytest.mark.parametrize("args, said", [
    (["bench/dense_space.py", "--dataset", "nope"], "error: Unknown dataset 'nope'"),
    (["bench/first_batch.py", "--preset", "nope"], "error: unknown preset 'nope'"),
    (["bench/search_overhead.py", "nope"], "error: unknown preset 'nope'"),
    (["bench/ga_weights.py", "--images", "-1"], "argument --images: '-1' is not an integer >= 1"),
    (["bench/proxy.py", "--genomes", "0"], "argument --genomes: '0' is not an integer >= 1"),
    (["bench/proxy.py", "--genomes", "2"], "--genomes must be >= 3"),
    (["bench/ga_weights.py", "--images", "5000"], "--images must be <= 3330"),
    (["bench/ga_weights.py", "--population", "1"], "error: `population` must be an integer >= 2"),
    (["bench/scaling.py", "--sleep", "nan"], "argument --sleep: 'nan' is not a number > 0"),
    (["bench/budget.py", "--seed", "-1"], "argument --seed: '-1' is not an integer >= 0"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_a_benchmark_given_nonsense_says_so_in_one_line_with_exit_2(args, said):
    result = _run(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr
