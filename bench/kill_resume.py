"""SIGKILL a real smoke search (and then its fine-tune) at random moments, resume after each kill,
and check that the finished run's files equal an uninterrupted run's (timing columns aside).

The moments are drawn with a fixed seed, uniformly over the first quarter of the uninterrupted
command's wall time (start-up included), so that most kills land before the command is done;
each resume is killed again until KILLS kills have landed (or a resume finished first).
Usage: python bench/kill_resume.py [KILLS]   (default 10; about 5-10 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SEARCH_CSVS = ("evaluations.csv", "population.csv", "generations.csv", "pareto_front.csv", "models/index.csv")
FINETUNE_CSVS = ("finetune.csv", "finetuned/index.csv")
TIMING = ("fit_seconds", "seconds", "finetune_seconds")


def moncae(*args: str) -> list[str]:
    return [sys.executable, "-m", "moncae", *args]


def comparable(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def kill_and_resume(first: list[str], again: list[str], span: float, kills: int, rng: random.Random) -> int:
    """Run `first`, SIGKILL it at a random moment, then `again` (killed likewise) until `kills`
    kills have landed or a run finished first; finish with `again`. Returns the kills landed."""
    landed, cmd = 0, first
    while landed < kills:
        moment = rng.uniform(0.0, span / 4)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=moment)
            break  # it finished before the kill
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
        cmd = again
    done = subprocess.run(again, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the final resume failed:\n{done.stdout}\n{done.stderr}")
    return landed


def compare(a: Path, b: Path, names) -> list[str]:
    bad = []
    for name in names:
        try:
            pd.testing.assert_frame_equal(comparable(a / name), comparable(b / name), check_exact=True)
        except AssertionError:
            bad.append(name)
    return bad


def main(kills: int = 10) -> None:
    os.environ.setdefault("MONCAE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    rng = random.Random(0)
    search = ["search", "--dataset", "mnist_5k", "--preset", "smoke", "--seed", "7", "--quiet"]
    finetune = ["--epochs", "2", "--classifier-epochs", "2", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        ref, hit = Path(tmp) / "ref", Path(tmp) / "killed"
        span = timed(moncae(*search, "--out", str(ref)))
        run_ref, run_hit = ref / "mnist_5k" / "seed-7", hit / "mnist_5k" / "seed-7"
        again = moncae(*search, "--out", str(hit), "--resume")
        landed = kill_and_resume(moncae(*search, "--out", str(hit)), again, span, kills, rng)
        bad = compare(run_ref, run_hit, SEARCH_CSVS)
        print(f"search: uninterrupted {span:.1f} s; {landed} of {kills} kills landed; "
              f"{'identical' if not bad else 'DIFFERENT: ' + ', '.join(bad)}")
        different = bool(bad)
        span = timed(moncae("finetune", str(run_ref), *finetune))
        landed = kill_and_resume(moncae("finetune", str(run_hit), *finetune),
                                 moncae("finetune", str(run_hit), *finetune), span, kills, rng)
        bad = compare(run_ref, run_hit, FINETUNE_CSVS)
        print(f"finetune: uninterrupted {span:.1f} s; {landed} of {kills} kills landed; "
              f"{'identical' if not bad else 'DIFFERENT: ' + ', '.join(bad)}")
        if different or bad:  # either stage's files differing fails the benchmark
            raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kills", nargs="?", type=int, default=10, help="SIGKILLs per stage (default 10, >= 1)")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error("kills must be >= 1")
    main(args.kills)
