"""The search loop end to end on smoke-sized settings (real training, tiny models, 1 epoch)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.evaluation.records import EVAL_COLUMNS, TIMING_COLUMNS
from moncae.evaluation.train import run_task
from moncae.search.loop import run_search
from moncae.store import GENERATION_COLUMNS, MODEL_INDEX_COLUMNS, POPULATION_COLUMNS

pytestmark = pytest.mark.slow  # trains real models

SEED = 5


def smoke(out: Path, **overrides):
    return resolve_config(preset="smoke", dataset="mnist_5k", seed=SEED, out=str(out), **overrides)


def comparable(path: Path) -> pd.DataFrame:
    """A CSV without its timing columns: what must be identical between equivalent runs."""
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in (*TIMING_COLUMNS, "seconds") if c in df.columns])


@pytest.fixture(scope="module")
def reference_run(smoke_run):
    assert smoke_run.config.seed == SEED
    return smoke_run


def test_run_writes_every_file_with_its_columns(reference_run):
    run = reference_run.run_dir
    for name in ("config.json", "evaluations.csv", "population.csv", "generations.csv",
                 "checkpoint.json", "models/index.csv", "pareto_front.csv"):
        assert (run / name).is_file(), name
    ev = pd.read_csv(run / "evaluations.csv")
    assert list(ev.columns[: len(EVAL_COLUMNS)]) == EVAL_COLUMNS
    assert "b0_filters" in ev.columns and "optimizer" in ev.columns
    assert ev["genome_key"].is_unique
    pop = pd.read_csv(run / "population.csv")
    assert list(pop.columns) == POPULATION_COLUMNS
    assert sorted(pop["generation"].unique()) == [0, 1]
    assert (pop.groupby("generation").size() == 4).all()
    gens = pd.read_csv(run / "generations.csv")
    assert list(gens.columns) == GENERATION_COLUMNS
    assert len(gens) == 2 and (gens["hypervolume"] > 0).all()
    index = pd.read_csv(run / "models" / "index.csv")
    assert list(index.columns) == MODEL_INDEX_COLUMNS and len(index) == 4
    for file in index["file"].dropna():
        assert (run / "models" / file).stat().st_size > 0
    assert len(list((run / "models").glob("*.keras"))) == index["file"].dropna().nunique()
    assert ((ev["status"] == "ok") & (ev["rec_loss"] > 0) & (ev["rec_loss"] < 4.0)).all()


def test_fitness_is_the_exclusive_hypervolume_contribution(reference_run):
    from tests.by_hand import exclusive_by_network

    pop = pd.read_csv(reference_run.run_dir / "population.csv")
    for _, group in pop.groupby("generation"):
        expected = exclusive_by_network(group[["rec_loss", "loc"]].to_numpy(), list(group["genome_key"]),
                                        (4.0, 12.0))
        assert group["fitness"].to_numpy() == pytest.approx(expected)


def test_cache_never_retrains_a_key(tmp_path, reference_run):
    seen: list[str] = []

    def counting(task):
        seen.append(task.key)
        return run_task(task)

    result = run_search(smoke(tmp_path, generations=3), task_fn=counting)
    assert len(seen) == len(set(seen))
    pop = pd.read_csv(result.run_dir / "population.csv")
    later = pop[pop["generation"] > 0]
    assert later["cached"].any(), "the elite survives, so later generations must hit the cache"
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert gens["trained"].sum() == len(seen)


def test_same_seed_gives_identical_csvs(tmp_path, reference_run):
    again = run_search(smoke(tmp_path))
    for name in ("evaluations.csv", "population.csv", "generations.csv"):
        pd.testing.assert_frame_equal(comparable(reference_run.run_dir / name),
                                      comparable(again.run_dir / name))


def test_a_failing_genome_is_recorded_and_the_run_completes(tmp_path, monkeypatch):
    import moncae.evaluation.train as evaluate

    real_build = evaluate.build_autoencoder
    victims: list[str] = []

    def flaky_build(genome, shape, **kwargs):
        if not victims or victims[0] == genome.key_for(shape):
            victims.append(genome.key_for(shape))
            raise RuntimeError("injected failure")
        return real_build(genome, shape, **kwargs)

    monkeypatch.setattr(evaluate, "build_autoencoder", flaky_build)
    result = run_search(smoke(tmp_path, workers=1))  # in this process, where the patch is
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    failed = ev[ev["genome_key"] == victims[0]].iloc[0]
    assert failed["status"] == "failed" and "injected failure" in failed["error"]
    assert (failed["rec_loss"], failed["loc"]) == (4.0, 12.0)
    assert (ev["status"] == "ok").sum() == len(ev) - 1
    assert len(pd.read_csv(result.run_dir / "generations.csv")) == 2


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "moncae.cli.main", "search", *args]


def test_sigterm_inside_a_training_in_this_process_stops_the_search(tmp_path, monkeypatch):
    """`--workers 1` trains in the command's own process, where a training records its errors as a
    failed training: the CLI's SIGTERM (raised wherever the process is, here inside a build) was
    one (`error=Terminated`, never trained again) and the command went on to exit 0."""
    import moncae.evaluation.train as evaluate
    from moncae.cli.main import Terminated

    def terminated(genome, shape, **kwargs):
        raise Terminated

    monkeypatch.setattr(evaluate, "build_autoencoder", terminated)
    with pytest.raises(Terminated):
        run_search(smoke(tmp_path, workers=1))
    journal = next(tmp_path.rglob("evaluations.csv"), None)
    assert journal is None or "Terminated" not in journal.read_text()


def test_sigterm_inside_a_fine_tune_in_this_process_stops_it(tmp_path, smoke_run, monkeypatch):
    import moncae.finetune.model as finetune_model
    from moncae.cli.main import Terminated
    from moncae.finetune import finetune_run

    def terminated(*args, **kwargs):
        raise Terminated

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    monkeypatch.setattr(finetune_model, "build_autoencoder", terminated)
    with pytest.raises(Terminated):
        finetune_run(run, epochs=1, classifier_epochs=1, workers=1)
    assert not (run / "finetune.csv").exists() or "Terminated" not in (run / "finetune.csv").read_text()


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 128 + signal.SIGTERM),
                                       (signal.SIGHUP, 128 + signal.SIGHUP)])
def test_resume_after_a_kill_equals_uninterrupted_run(tmp_path, reference_run, sig, code):
    """SIGKILL: nothing runs after it. SIGTERM (`kill PID`, a scheduler's time limit) and SIGHUP (the
    terminal or ssh session closed): the command stops its workers, says how to go on and exits 143
    or 129 (SIGHUP killed it before, with a leaked-semaphore warning)."""
    args = ["--dataset", "mnist_5k", "--seed", str(SEED), "--preset", "smoke", "--out", str(tmp_path),
            "--quiet", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}  # the CLI's default (conftest lets TensorFlow's C++ errors through)
    proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "mnist_5k" / f"seed-{SEED}" / "checkpoint.json"
    deadline = time.time() + 240
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)  # mid generation 1: generation 0 is checkpointed
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, f"the run finished before it could be stopped: {err}"
    if sig != signal.SIGKILL:
        assert err.strip().splitlines() == [
            f"Stopped by {signal.Signals(sig).name}; what was journaled before is kept: run the same command with "
            "--resume to go on"], err  # no traceback, no leaked-semaphore warning
    done = subprocess.run(_cli(*args, "--resume"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    run = checkpoint.parent
    for name in ("evaluations.csv", "population.csv", "generations.csv", "pareto_front.csv", "models/index.csv"):
        pd.testing.assert_frame_equal(comparable(reference_run.run_dir / name), comparable(run / name))
