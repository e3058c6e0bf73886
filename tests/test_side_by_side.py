"""Seeds side by side (`--seeds-at-once`): each run folder equals the one its seed gets alone, a stop
keeps what was journaled and `--resume` goes on to the same files; refusals are one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from moncae.cli.main import main
from moncae.config import resolve_config
from moncae.errors import MoncaeError, MoncaeWarning
from moncae.evaluation.surrogate import surrogate_task
from moncae.search.loop import run_search
from moncae.search.side_by_side import SeedOutcome, resolve_at_once, run_side_by_side, slot_plan
from tests.runs import WITH_INDEX, assert_same


def test_auto_runs_one_seed_per_worker_and_one_at_a_time_where_that_would_change_a_run(tiny_npz, tmp_path):
    def configs(n, **settings):
        return [resolve_config(dataset=str(tiny_npz), seed=s, out=str(tmp_path), **settings) for s in range(n)]

    assert resolve_at_once("auto", configs(3, workers=2)) == 2
    assert resolve_at_once("auto", configs(2, workers=4)) == 2  # not more than the seeds
    assert resolve_at_once("auto", configs(3, workers=4)) == 2  # 2 workers each, not 3 seeds of 1
    assert resolve_at_once("auto", configs(5, workers=3)) == 3
    assert resolve_at_once("auto", configs(1, workers=2)) == 1
    assert resolve_at_once("auto", configs(3, workers=1)) == 1  # in this process
    assert resolve_at_once("auto", configs(3, workers=2, max_minutes=5.0)) == 1  # each seed's budget
    assert resolve_at_once("auto", configs(3, executor="dask", workers=2)) == 1
    assert resolve_at_once("1", configs(3, workers=2)) == 1
    assert resolve_at_once("2", configs(3, workers=3)) == 2
    assert resolve_at_once("2", configs(1, workers=2)) == 1  # one seed keeps both workers
    with pytest.warns(MoncaeWarning, match="each seed's budget counts its own time"):
        assert resolve_at_once("2", configs(2, workers=2, max_minutes=5.0)) == 2


@pytest.mark.parametrize("value, settings, said", [
    ("3", {"workers": 2}, "--seeds-at-once 3 needs at least 3 worker processes"),
    ("2", {"workers": 1}, "--seeds-at-once 2 with --workers 1"),
    ("2", {"executor": "dask", "workers": 2}, "with --executor dask the cluster already shares its workers"),
    ("0", {"workers": 2}, "must be a positive integer or 'auto'"),
    ("two", {"workers": 2}, "must be a positive integer or 'auto'"),
])
def test_a_seeds_at_once_that_cannot_be_is_refused_naming_the_fix(tiny_npz, tmp_path, value, settings, said):
    configs = [resolve_config(dataset=str(tiny_npz), seed=s, out=str(tmp_path), **settings) for s in (1, 2)]
    with pytest.raises(MoncaeError, match=said.replace("(", r"\(").replace(")", r"\)")):
        resolve_at_once(value, configs)


def test_each_seed_gets_its_share_of_the_workers_and_the_threads_the_workers_give_alone():
    assert slot_plan(2, 2, cores=2) == (1, 1)  # --workers 2 on 2 cores: 1 thread a training
    assert slot_plan(4, 2, cores=8) == (2, 2)
    assert slot_plan(3, 2, cores=6) == (1, 2)  # a worker left over stays unused, the threads as --workers 3
    assert slot_plan(2, 1, cores=2) == (2, 1)


def test_the_command_refuses_more_seeds_at_once_than_workers_before_anything_is_written(tiny_npz, tmp_path):
    result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "1,2,3", "--workers", "2",
                                       "--seeds-at-once", "3", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.startswith("Error: --seeds-at-once 3 needs"), result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_seeds_side_by_side_write_the_run_folders_each_seed_gets_alone(stub_config, tmp_path):
    """Three seeds two at a time, in driver processes of their own (the surrogate trains: no
    Keras), against each seed run alone with the same workers."""
    side = [stub_config(tmp_path / "side", seed=s, generations=3, workers=2) for s in (1, 2, 3)]
    ended = []
    outcomes = run_side_by_side(side, 2, task_fn=surrogate_task, on_outcome=ended.append)
    assert [o.seed for o in outcomes] == [1, 2, 3] and sorted(o.seed for o in ended) == [1, 2, 3]
    assert all(o.done and o.finals == 8 and o.ok > 0 for o in outcomes)
    for config in side:
        alone = stub_config(tmp_path / "alone", seed=config.seed, generations=3, workers=2)
        run_search(alone, task_fn=surrogate_task)
        assert_same(config.run_dir, alone.run_dir, WITH_INDEX)


@pytest.mark.slow
def test_a_seed_that_is_refused_is_said_and_the_others_go_on(stub_config, tmp_path):
    from moncae.store import RunLock

    configs = [stub_config(tmp_path, seed=s, generations=2, workers=2) for s in (1, 2, 3)]
    configs[1].run_dir.mkdir(parents=True)
    with RunLock(configs[1].run_dir, "another moncae search"):  # seed 2's folder is in use
        outcomes = run_side_by_side(configs, 2, task_fn=surrogate_task)
    assert [o.done for o in outcomes] == [True, False, True]
    assert outcomes[1].failure_kind == "input" and "in use" in outcomes[1].failure
    assert (configs[2].run_dir / "pareto_front.csv").exists()


def test_the_command_says_each_seed_and_exits_2_naming_the_refused_one(tiny_npz, tmp_path, monkeypatch):
    import moncae.search.side_by_side as side_by_side

    def fake(configs, at_once, *, resume, progress, setup, on_outcome):
        outcomes = [SeedOutcome(1, configs[0].run_dir, finals=4, ok=4, models_saved=4),
                    SeedOutcome(2, configs[1].run_dir, failure="RUN is in use by PID 9; wait for it",
                                failure_kind="input")]
        for outcome in outcomes:
            on_outcome(outcome)
        return outcomes

    monkeypatch.setattr(side_by_side, "run_side_by_side", fake)
    result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "1,2", "--workers", "2",
                                       "--seeds-at-once", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("2 seeds, 2 at a time, each with 1 worker process(es)")
    assert "[seed 1] done: 4/4 final models trained, 4 with their model on disk" in result.output
    assert "Error: seed 2: RUN is in use by PID 9; wait for it" in lines
    assert "seed(s) 1 of this command are done: run it again with --resume once the cause is fixed" in lines


STOPPED_SCRIPT = """
import sys, time
from moncae.config import resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.search.side_by_side import run_side_by_side


def slow_task(task):
    time.sleep(0.15)
    return surrogate_task(task)


if __name__ == "__main__":
    configs = [resolve_config(dataset=sys.argv[1], seed=s, out=sys.argv[2], generations=6, population=8,
                              max_blocks=4, max_filters=32, elitism=0.25, workers=2) for s in (1, 2)]
    try:
        run_side_by_side(configs, 2, resume=sys.argv[3] == "resume", task_fn=slow_task)
    except KeyboardInterrupt:
        sys.exit(130)
"""


@pytest.mark.slow
def test_a_ctrl_c_stops_every_seed_and_resume_gives_the_files_of_a_run_never_stopped(tiny_npz, tmp_path):
    script = tmp_path / "side.py"
    script.write_text(STOPPED_SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_npz), str(out), "new"], start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    journals = [out / "tiny" / f"seed-{s}" / "evaluations.csv" for s in (1, 2)]
    deadline = time.monotonic() + 120
    while not all(j.exists() and len(j.read_text().splitlines()) > 3 for j in journals):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    assert proc.wait(timeout=120) == 130, proc.stderr.read()
    assert not (out / "tiny" / "seed-1" / "pareto_front.csv").exists()  # stopped before the end
    done = subprocess.run([sys.executable, str(script), str(tiny_npz), str(out), "resume"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for seed in (1, 2):
        alone = resolve_config(dataset=str(tiny_npz), seed=seed, out=str(tmp_path / "alone"), generations=6,
                               population=8, max_blocks=4, max_filters=32, elitism=0.25)
        run_search(alone, task_fn=surrogate_task)
        assert_same(out / "tiny" / f"seed-{seed}", alone.run_dir, WITH_INDEX)


@pytest.mark.slow
def test_real_trainings_side_by_side_equal_those_of_the_same_seeds_one_after_another(tmp_path):
    """The real thing (Keras, smoke preset): `--seeds-at-once 2` against `--seed 1,2` with the same
    two workers, to the bit (the trainings' thread count is the same, 1 on 2 cores)."""
    base = ["search", "--dataset", "mnist_5k", "--preset", "smoke", "--seed", "1,2", "--workers", "2", "--quiet"]
    said = {}
    for folder, more in (("side", ["--seeds-at-once", "2"]), ("alone", [])):
        done = subprocess.run([sys.executable, "-m", "moncae", *base, *more, "--out", str(tmp_path / folder)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        said[folder] = done.stdout
    assert "[seed 1] done: " in said["side"] and "[seed 2] gen  2/2" in said["side"], said["side"]
    for seed in (1, 2):
        run = Path("mnist_5k") / f"seed-{seed}"
        assert_same(tmp_path / "side" / run, tmp_path / "alone" / run, WITH_INDEX)


UNGUARDED_SCRIPT = """
import sys
from moncae.config import resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.search.side_by_side import run_side_by_side

configs = [resolve_config(dataset=sys.argv[1], seed=s, out=sys.argv[2], generations=1, population=4, workers=2)
           for s in (1, 2)]
for outcome in run_side_by_side(configs, 2, task_fn=surrogate_task):
    print(outcome.failure)
"""


@pytest.mark.slow
def test_a_script_without_the_main_guard_is_told_how_to_call_it(tiny_npz, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tiny_npz), str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and all('under `if __name__ == "__main__":`' in line for line in lines), done.stdout
