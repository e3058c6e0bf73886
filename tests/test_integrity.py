"""Run-folder integrity: a run never reports success while losing results, never executes code
from a folder, survives concurrent and torn writes, and checks its settings and data.

One test (or more) per case of the integrity issue, on the surrogate evaluator (no Keras)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from moncae.cli.main import main
from moncae.config import resolve_config
from moncae.errors import MoncaeError, RunFolderError, RunFolderWarning
from moncae.evaluation.records import EvalResult, failed_record
from moncae.evaluation.surrogate import surrogate_task
from moncae.report import ReportWarning
from moncae.report.collect import collect_runs
from moncae.search.loop import StoppedOnIO, run_search
from moncae.store import RunFolder, RunLock, lock_holder
from tests.runs import CSVS, TEXT, Crash, Messages, assert_same, crashing_after, read, with_model


@pytest.fixture
def reference(stub_config, tmp_path):
    return run_search(stub_config(tmp_path / "ref"), task_fn=with_model).run_dir


# -- 1. status is the truth --------------------------------------------------------------------
def test_a_full_disk_stops_the_search_and_resume_continues_as_if_uninterrupted(stub_config, tmp_path,
                                                                               monkeypatch, reference):
    """The disk fills up in the middle of the run: the search stops before journaling the training
    whose model it could not save (going on would breed from failures), and `--resume` with
    space freed gives the uninterrupted run's CSVs."""
    config = stub_config(tmp_path / "full")
    real_save = RunFolder.save_model_bytes
    broken = {"on": True}

    def save(self, key, data, **kwargs):
        if broken["on"] and key in middle:
            raise OSError(28, "No space left on device")
        return real_save(self, key, data, **kwargs)

    ev = pd.read_csv(reference / "evaluations.csv")  # trained first in a middle generation
    middle = set(ev.loc[ev["generation"] == ev["generation"].max() // 2, "genome_key"]) - set(
        ev.loc[ev["generation"] < ev["generation"].max() // 2, "genome_key"])
    assert middle
    monkeypatch.setattr(RunFolder, "save_model_bytes", save)
    with pytest.raises(StoppedOnIO, match="No space left"):
        run_search(config, task_fn=with_model)
    ev = pd.read_csv(config.run_dir / "evaluations.csv", dtype={"failure": str})
    assert (ev["status"] == "ok").all() and not set(ev["genome_key"]) & middle  # nothing failed journaled

    broken["on"] = False  # space freed
    resumed = run_search(config, resume=True, task_fn=with_model)
    assert not resumed.unsaved and resumed.models_saved == len(resumed.records)
    assert_same(reference, config.run_dir, dtype=TEXT)


def test_a_worker_that_cannot_read_or_write_a_file_stops_the_search(stub_config, tmp_path, reference):
    """A training that comes back failed with kind `io` (its worker's disk is full, the data is
    unreadable there) stops the search the same way; `--resume` then equals an uninterrupted run."""
    config = stub_config(tmp_path / "io")
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 5:
            return EvalResult(failed_record(task, "OSError: [Errno 28] No space left on device", failure="io"))
        return with_model(task)

    with pytest.raises(StoppedOnIO, match="No space left"):
        run_search(config, task_fn=flaky)
    assert len(pd.read_csv(config.run_dir / "evaluations.csv")) == 4
    run_search(config, resume=True, task_fn=with_model)
    assert_same(reference, config.run_dir, dtype=TEXT)


@pytest.mark.slow  # the CLI's default evaluator module imports TensorFlow
def test_search_cli_exits_1_with_one_line_when_the_disk_is_full(tiny_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(RunFolder, "save_model_bytes",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(28, "disk full")))
    import moncae.evaluation.train as train

    monkeypatch.setattr(train, "run_task", with_model)
    result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "1", "--generations", "2",
                                       "--population", "4", "--out", str(tmp_path),
                                       "--workers", "1"])  # in this process, where the patch is
    assert result.exit_code == 1, result.output
    assert "disk full" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow  # the CLI's default evaluator module imports TensorFlow
def test_a_run_file_replaced_by_a_folder_is_bad_input_exit_2(tiny_npz, tmp_path, monkeypatch):
    """Not the disk-full advice with exit 1 (a helper's audit)."""
    import moncae.evaluation.train as train

    monkeypatch.setattr(train, "run_task", with_model)
    argv = ["search", "--dataset", str(tiny_npz), "--seed", "1", "--generations", "2", "--population", "4",
            "--out", str(tmp_path), "--workers", "1"]  # in this process, where the patch is
    assert CliRunner().invoke(main, argv).exit_code == 0
    checkpoint = next(tmp_path.rglob("checkpoint.json"))
    checkpoint.unlink()
    checkpoint.mkdir()  # a folder where the checkpoint belongs
    result = CliRunner().invoke(main, [*argv, "--resume"])
    assert result.exit_code == 2, result.output
    assert "a folder where a file belongs" in result.output and "Traceback" not in result.output


def test_ctrl_c_says_how_to_go_on_and_exits_130(tmp_path, monkeypatch):
    import moncae.search as search

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "run_search", interrupted)
    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke",
                                       "--out", str(tmp_path), "--workers", "1"])
    assert result.exit_code == 130, result.output
    assert "Stopped by Ctrl-C" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_sighup_stops_as_sigterm_does_but_not_under_nohup(tmp_path, monkeypatch):
    """A closed terminal or ssh session (SIGHUP) killed the command, workers' semaphores leaked, with
    no word on how to go on (a helper's audit); under `nohup` (SIGHUP ignored) it goes on."""
    import signal

    import moncae.search as search

    def hung_up(*args, **kwargs):
        signal.raise_signal(signal.SIGHUP)
        raise AssertionError("went on after SIGHUP")

    monkeypatch.setattr(search, "run_search", hung_up)
    args = ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke", "--out", str(tmp_path),
            "--workers", "1"]
    before = signal.getsignal(signal.SIGHUP)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 129, result.output
    assert "Stopped by SIGHUP" in result.output and "--resume" in result.output
    assert signal.getsignal(signal.SIGHUP) is before
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    try:
        result = CliRunner().invoke(main, args)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert isinstance(result.exception, AssertionError), result.output  # the signal was ignored: it went on


def test_a_ctrl_c_while_the_commands_load_exits_130_without_a_traceback():
    """The console script's first ~0.2 s import the commands (NumPy, pandas, Click); a Ctrl-C then
    printed Python's traceback (a helper's audit)."""
    code = ("import sys\n"
            "class Stop:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'moncae.cli.main':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Stop())\n"
            "from moncae.cli.entry import run\n"
            "run()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 130 and done.stderr == "" and done.stdout == "", done


# -- 2. a lock per run folder -------------------------------------------------------------------
def test_a_second_command_on_a_locked_folder_exits_2_naming_the_holder(stub_config, tmp_path):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    with RunLock(config.run_dir, "moncae search"):
        assert lock_holder(config.run_dir) and str(os.getpid()) in lock_holder(config.run_dir)
        with pytest.raises(RunFolderError, match=f"in use by PID {os.getpid()} on "):
            run_search(config, resume=True, task_fn=surrogate_task)
        result = CliRunner().invoke(main, ["finetune", str(config.run_dir)])
        assert result.exit_code == 2 and "in use by PID" in result.output, result.output
        result = CliRunner().invoke(main, ["search", "--dataset", config.dataset, "--seed", "3", "--out",
                                           config.out, "--resume"])  # refused alone, no `search ... ->` first
        assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
        assert "in use by PID" in result.output
        result = CliRunner().invoke(main, ["search", "--dataset", config.dataset, "--seed", "3", "--out",
                                           config.out])  # not only "pass --resume": that is locked too
        assert result.exit_code == 2 and "already has results and is in use by PID" in result.output
        assert "wait for it to finish, then pass --resume" in result.output, result.output
        with pytest.warns(ReportWarning, match="in progress"):
            collect_runs(config.run_dir.parent)
    with pytest.raises(Crash):  # a search stopped in generation 1, then one running there
        run_search(stub_config(tmp_path / "cut"), task_fn=crashing_after(11, with_model))
    with RunLock(stub_config(tmp_path / "cut").run_dir, "moncae search"), pytest.warns(ReportWarning) as seen:
        collect_runs(tmp_path / "cut")
    notes = [str(w.message) for w in seen]
    assert any("has done generation 1 of 4 so far" in n for n in notes), notes
    assert not any("stopped after" in n for n in notes), notes  # not while it runs (a helper's audit)
    assert lock_holder(config.run_dir) is None
    run_search(config, resume=True, task_fn=surrogate_task)  # free again


def test_reading_a_run_whose_search_still_runs_says_to_wait_not_to_resume(stub_config):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    path = config.run_dir / "checkpoint.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "finished": False}))  # mid-run
    with RunLock(config.run_dir, "moncae search"):
        result = CliRunner().invoke(main, ["front", str(config.run_dir)])
        assert result.exit_code == 2 and "its search is still running (PID" in result.output, result.output
        assert "--resume" not in result.output
    result = CliRunner().invoke(main, ["front", str(config.run_dir)])  # nobody runs it: resume it
    assert result.exit_code == 2 and "--resume" in result.output, result.output


def test_the_resume_hint_of_a_moved_run_resumes_it_where_it_is_now(stub_config, tmp_path):
    """A run copied elsewhere (results from a cluster) was told to resume with its old --out, which
    would change the original run (a helper's audit); one renamed cannot be resumed where it is."""
    config = stub_config(out=tmp_path / "orig", generations=2)
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(10))
    moved = tmp_path / "copy" / config.run_dir.parent.name / config.run_dir.name
    shutil.copytree(config.run_dir, moved)
    hint = RunFolder(moved).resume_command()
    assert f"--out {tmp_path / 'copy'} " in hint and str(tmp_path / "orig") not in hint, hint
    result = CliRunner().invoke(main, ["front", str(moved)])
    assert result.exit_code == 2 and f"--out {tmp_path / 'copy'} " in result.output, result.output
    renamed = tmp_path / "elsewhere" / "b"
    shutil.copytree(config.run_dir, renamed)
    hint = RunFolder(renamed).resume_command()
    assert f"--out {tmp_path / 'orig'} " in hint and f"after moving {renamed} to " in hint, hint
    # followed, the hint resumes the copy and leaves the original as it was
    before = {p.name: p.read_bytes() for p in config.run_dir.iterdir() if p.is_file()}
    from moncae import read_run_config

    copy = read_run_config(moved)  # the README's recipe from Python: the copy's settings, where it is now
    assert copy.out == str(tmp_path / "copy") and read_run_config(renamed).out == config.out
    run_search(copy, resume=True, task_fn=surrogate_task)
    assert (moved / "models" / "index.csv").exists()
    assert {p.name: p.read_bytes() for p in config.run_dir.iterdir() if p.is_file()} == before


def test_a_lock_file_that_is_a_link_is_replaced_never_written_through(tmp_path):
    """A run folder from elsewhere with `.lock -> a file of yours` (a helper's audit: the file was
    truncated and overwritten with the lock's JSON)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    assert lock_holder(run) is None
    with RunLock(run, "moncae finetune"):
        assert not (run / ".lock").is_symlink() and "moncae finetune" in lock_holder(run)
    assert victim.read_text() == "precious"
    os.mkfifo(run / "fifo")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(run / "fifo")  # nor read through one (a FIFO would block)
    assert lock_holder(run) is None
    (run / ".lock").unlink()
    os.mkfifo(run / ".lock")
    with pytest.raises(RunFolderError, match="is not a plain file"):
        RunLock(run, "moncae search").acquire()


def test_a_reader_looking_who_holds_the_lock_does_not_refuse_a_command_starting(tmp_path):
    """`lock_holder` (report, front, export) takes a shared lock for a moment; a command starting
    then was refused in the name of a process long ended (a helper's audit)."""
    import fcntl
    import threading

    with RunLock(tmp_path, "moncae search"):  # a process that ended: its info stays in the file
        pass
    fd = os.open(tmp_path / ".lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a reader, right now
    threading.Timer(0.1, os.close, [fd]).start()
    with RunLock(tmp_path, "moncae finetune"):  # waits the reader out
        assert lock_holder(tmp_path) is not None


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from moncae.store import RunLock; "
            f"RunLock({str(tmp_path)!r}, 'test').acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    assert lock_holder(tmp_path) is not None
    proc.kill()
    proc.wait()
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path, "again"):
        pass


def test_a_run_folder_that_cannot_be_written_is_a_one_line_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunFolderError, match=r"cannot write to .*a-file/run .*use a folder you can write"):
        RunLock(tmp_path / "a-file" / "run", "moncae search").acquire()


# -- 3. no code execution from a run folder ------------------------------------------------------
class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_old_or_crafted_pickle_checkpoint_is_refused_unread(stub_config, tmp_path):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    run = config.run_dir
    (run / "checkpoint.json").unlink()
    marker = tmp_path / "pwned"
    (run / "checkpoint.pkl").write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(RunFolderError, match="never loaded"):
        run_search(config, resume=True, task_fn=surrogate_task)
    result = CliRunner().invoke(main, ["finetune", str(run)])
    assert result.exit_code == 2 and "never loaded" in result.output, result.output
    assert not marker.exists()


def test_the_checkpoint_is_plain_json(stub_config):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    state = json.loads((config.run_dir / "checkpoint.json").read_text())
    assert state["format"] == "moncae-checkpoint" and state["finished"] is True
    assert not list(config.run_dir.glob("*.pkl"))


# -- 4. torn journals ---------------------------------------------------------------------------
@pytest.mark.parametrize("cut", [17, -1])  # inside the key, and the newline alone
def test_a_torn_last_row_is_dropped_and_the_resumed_run_equals_the_uninterrupted_one(
        stub_config, tmp_path, reference, cut):
    config = stub_config(tmp_path / "torn")
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(11, with_model))  # mid generation 1
    path = config.run_dir / "evaluations.csv"
    data = path.read_bytes()
    last = data.rstrip(b"\r\n").rfind(b"\n") + 1  # start of the last row
    path.write_bytes(data[: last + cut] if cut > 0 else data[:cut])  # cut inside the last row
    with pytest.warns(RunFolderWarning, match=r"evaluations.csv:\d+: torn last line"):
        run_search(config, resume=True, task_fn=with_model)
    assert_same(reference, config.run_dir, dtype=TEXT)
    assert pd.read_csv(path)["genome_key"].is_unique


def test_a_finished_run_whose_last_row_was_torn_trains_it_again_and_says_why(stub_config, tmp_path):
    config = stub_config(tmp_path / "torn")
    run_search(config, task_fn=with_model)
    path = config.run_dir / "evaluations.csv"
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\r\n").rfind(b"\n") + 17])
    heard = Messages()
    with pytest.warns(RunFolderWarning, match=r"evaluations.csv:\d+: torn last line"):
        run_search(config, resume=True, task_fn=with_model, progress=heard)
    assert f"{config.run_dir}: 1 network(s) of the last generation lack a training in the journal (one that " \
        "failed for a passing reason, or whose row was cut off); training them again" in heard.lines


def test_damage_in_the_middle_of_a_journal_is_an_error_naming_the_line(stub_config, tmp_path):
    config = stub_config()
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(11, with_model))
    path = config.run_dir / "evaluations.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3][:20] + b"\r\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(RunFolderError, match=r"evaluations.csv:4: expected \d+ fields"):
        run_search(config, resume=True, task_fn=surrogate_task)


@pytest.mark.parametrize("finished", [False, True])
def test_a_journal_missing_a_front_networks_row_is_refused_before_anything_is_written(
        stub_config, finished):
    config = stub_config()
    if finished:
        run_search(config, task_fn=with_model)
    else:
        with pytest.raises(Crash):
            run_search(config, task_fn=crashing_after(11, with_model))
    run = config.run_dir
    front_key = json.loads((run / "checkpoint.json").read_text())["halloffame"][0]["key"]
    rows = pd.read_csv(run / "evaluations.csv", dtype=str, keep_default_na=False)
    rows[rows["genome_key"] != front_key].to_csv(run / "evaluations.csv", index=False)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunFolderError, match="no row for 1 network.*start a new run with --out"):
        run_search(config, resume=True, task_fn=with_model)
    assert before == {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("rungs", [False, True])
def test_a_run_replayed_from_its_journal_without_a_checkpoint_equals_the_original(stub_config, tmp_path,
                                                                                  rungs):
    settings = {"fidelity": "rungs", "rungs": [[1, 40]], "promote": 1.0, "promotion": "front"} if rungs else {}
    original = stub_config(tmp_path / "original", **settings)
    run_search(original, task_fn=with_model)
    replay = stub_config(tmp_path / "replay", **settings)
    shutil.copytree(original.run_dir, replay.run_dir)
    (replay.run_dir / "checkpoint.json").unlink()  # what the error for a damaged one advises
    trained = []
    run_search(replay, resume=True, task_fn=lambda task: trained.append(task) or with_model(task))
    assert trained == []  # every training reused
    for name in CSVS:  # to the bit, the timing columns too: the cumulative columns and seconds
        pd.testing.assert_frame_equal(pd.read_csv(original.run_dir / name, dtype=TEXT),
                                      pd.read_csv(replay.run_dir / name, dtype=TEXT), check_exact=True)


# -- 5. settings and data checked on every reuse ------------------------------------------------
def test_resume_without_config_json_is_refused(stub_config):
    config = stub_config()
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(11, with_model))
    (config.run_dir / "config.json").unlink()
    with pytest.raises(RunFolderError, match="no config.json"):
        run_search(config, resume=True, task_fn=surrogate_task)


def test_resume_with_other_settings_is_refused(stub_config):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    with pytest.raises(RunFolderError, match="epochs: 5 -> 3") as err:
        run_search(stub_config(epochs=3), resume=True, task_fn=surrogate_task)
    assert "--preset" not in str(err.value)  # the run had no preset


def test_resume_without_the_runs_preset_names_it(tiny_npz, tmp_path):
    config = resolve_config(dataset=str(tiny_npz), seed=3, out=str(tmp_path), preset="smoke", val_size=16,
                            train_size=64, test_size=16)
    run_search(config, task_fn=surrogate_task)
    plain = resolve_config(dataset=str(tiny_npz), seed=3, out=str(tmp_path), val_size=16, train_size=64,
                           test_size=16)
    with pytest.raises(RunFolderError, match="it was made with --preset smoke .*pass --preset smoke and"):
        run_search(plain, resume=True, task_fn=surrogate_task)


# -- 6. data checked ----------------------------------------------------------------------------
def test_changed_data_is_refused_by_resume_and_finetune(stub_config, tmp_path):
    data = tmp_path / "mine.npz"
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (96, 16, 16), dtype=np.uint8), "y_train": rng.integers(0, 10, 96),
              "x_test": rng.integers(0, 256, (32, 16, 16), dtype=np.uint8), "y_test": rng.integers(0, 10, 32)}
    np.savez(data, **arrays)
    config = resolve_config(dataset=str(data), seed=1, out=str(tmp_path / "out"), generations=2, population=4)
    run_search(config, task_fn=surrogate_task)
    arrays["x_train"][0, 0, 0] ^= 1  # one pixel
    np.savez(data, **arrays)
    later = data.stat().st_mtime + 1  # as a rewrite a moment later: read again, not the process's copy
    os.utime(data, (later, later))
    with pytest.raises(RunFolderError, match="not the data .* was searched on"):
        run_search(config, resume=True, task_fn=surrogate_task)
    result = CliRunner().invoke(main, ["finetune", str(config.run_dir)])
    assert result.exit_code == 2 and "fingerprint" in result.output, result.output


# -- 7. transient failures are retried, permanent ones cached -------------------------------------
def _failing(is_victim, failure: str, error: str):
    """`with_model`, but the trainings `is_victim(task)` picks fail with `failure` (scored at the
    reference point, as a failed training is)."""
    def task_fn(task):
        result = with_model(task)
        if is_victim(task):
            rec = result.record
            rec.status, rec.failure, rec.error = "failed", failure, error
            rec.rec_loss, rec.loc = task.ref_point
            return EvalResult(rec)
        return result

    return task_fn


def test_a_transient_failure_in_the_last_generation_is_retried_to_the_uninterrupted_result(
        stub_config, tmp_path, reference):
    final = pd.read_csv(reference / "population.csv")
    last = final[final["generation"] == final["generation"].max()]
    ev = pd.read_csv(reference / "evaluations.csv")
    victim = ev[(ev["generation"] == ev["generation"].max()) & ev["genome_key"].isin(last["genome_key"])]
    victim = victim["genome_key"].iloc[0]

    out_of_memory_once = _failing(lambda task: task.key == victim, "oom", "ResourceExhaustedError: OOM")
    config = stub_config(tmp_path / "oom")
    assert run_search(config, task_fn=out_of_memory_once).unsaved
    resumed = run_search(config, resume=True, task_fn=with_model)
    assert not resumed.unsaved
    assert_same(reference, config.run_dir, names=CSVS[1:], dtype=TEXT)
    by_key = [read(d, "evaluations.csv", TEXT).sort_values("genome_key", ignore_index=True)
              for d in (reference, config.run_dir)]  # the retried row comes last in the journal
    pd.testing.assert_frame_equal(*by_key, check_exact=True)


def test_an_earlier_generations_transient_failure_stays_on_record_after_resume(stub_config, tmp_path):
    """A resume trains again the passing failures of the genomes it trains next; it used to drop
    every such row of the journal, also of generations it never returns to: a finished run lost
    its record of them (and `population.csv` named genomes the journal no longer had)."""
    first = {}
    lost_in_generation_0 = _failing(lambda task: first.setdefault("key", task.key) == task.key,  # its first
                                    "lost", "its worker process died each time")
    config = stub_config(tmp_path / "lost")
    result = run_search(config, task_fn=lost_in_generation_0)
    final = {r.genome_key for r in result.records}
    journal = (config.run_dir / "evaluations.csv").read_bytes()
    assert first["key"] not in final and b",lost," in journal  # not a final genome: nothing to redo

    def never(task):
        raise AssertionError("nothing may be retrained")

    run_search(config, resume=True, task_fn=never)
    assert (config.run_dir / "evaluations.csv").read_bytes() == journal


def test_permanent_failures_stay_cached(stub_config):
    def nan_for_some(task):
        result = surrogate_task(task)
        if task.seed % 5 == 0:
            result.record.status, result.record.failure = "failed", "nan"
        return result

    config = stub_config()
    run_search(config, task_fn=nan_for_some)
    before = (config.run_dir / "evaluations.csv").read_bytes()

    def never(task):
        raise AssertionError("nothing may be retrained")

    run_search(config, resume=True, task_fn=never)
    assert (config.run_dir / "evaluations.csv").read_bytes() == before


# -- 8. the report never double-counts and survives garbage ---------------------------------------
def test_report_warns_and_never_averages_a_copied_run(stub_config, tmp_path):
    config = stub_config(tmp_path / "a")
    run_search(config, task_fn=surrogate_task)
    shutil.copytree(tmp_path / "a", tmp_path / "results" / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "results" / "b")
    (tmp_path / "results" / "junk" / "x").mkdir(parents=True)
    (tmp_path / "results" / "junk" / "x" / "config.json").write_text("[1, 2]")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        runs = collect_runs(tmp_path / "results")
    messages = [str(w.message) for w in seen]
    assert len(runs) == 1
    assert any("same dataset, settings, strategy and seed" in m for m in messages)
    assert any("junk" in m and "left out" in m for m in messages)


def test_report_keeps_runs_of_other_settings_apart(stub_config, tmp_path):
    run_search(stub_config(tmp_path / "r", seed=1), task_fn=surrogate_task)
    run_search(stub_config(tmp_path / "r", seed=2, epochs=2), task_fn=surrogate_task)
    with pytest.warns(ReportWarning, match="different settings") as seen:
        runs = collect_runs(tmp_path / "r")
    assert len({r.dataset for r in runs}) == 2
    message = next(str(w.message) for w in seen if "different settings" in str(w.message))
    for run in runs:  # each group named with what sets it apart (the seed does not)
        assert f"{run.dataset} (epochs={run.config.epochs})" in message, message
    from moncae.report.markdown import report_markdown

    text = report_markdown(tmp_path / "r", runs, pd.DataFrame(), [])
    for run in runs:
        assert f"- `{run.dataset}`: epochs={run.config.epochs}" in text, text


# -- 9 and 10. bad input: one line, exit 2 ------------------------------------------------------
def _toml(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return ["--config", str(path)]


@pytest.mark.parametrize("extra, expected", [
    (lambda t: _toml(t, "search = 5"), "must be a table"),
    (lambda t: _toml(t, "ref_point = [nan, inf]"), "ref_point"),
    (lambda t: _toml(t, "ref_point = [4.0, -1.0]"), "ref_point"),
    (lambda t: ["--population", "300000000"], "population"),
    (lambda t: ["--seed", "-5"], "non-negative"),
    (lambda t: _toml(t, "optimizers = []"), "`optimizers` must be at least one of the names from adadelta"),
])
def test_bad_settings_exit_2_with_one_line(tiny_npz, tmp_path, extra, expected):
    args = ["search", "--dataset", str(tiny_npz), "--preset", "smoke", "--out", str(tmp_path / "out")]
    if "--seed" not in extra(tmp_path):
        args += ["--seed", "1"]
    result = CliRunner().invoke(main, [*args, *extra(tmp_path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / "evaluations.csv").write_bytes(b"\xff\xfe garbage \x00\n" * 3), "evaluations.csv"),
    (lambda run: (run / "generations.csv").write_bytes(b"\xff\xfe\x00\x01"), "generations.csv"),
    (lambda run: (run / "population.csv").write_bytes(
        (run / "population.csv").read_bytes().replace(b"\r\n", b"\r\nx,y,z,1,2,3,4\r\n", 1)), "population.csv"),
    (lambda run: (run / "config.json").write_text("[1, 2]"), "config.json"),
    (lambda run: (run / "checkpoint.json").write_text('{"format": "moncae-checkpoint"}'), "checkpoint.json"),
])
@pytest.mark.slow  # the CLI's default evaluator module imports TensorFlow
def test_damaged_run_files_on_resume_exit_2_with_one_line(stub_config, tmp_path, damage, expected, monkeypatch):
    config = stub_config()
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(11, with_model))
    damage(config.run_dir)
    import moncae.evaluation.train as train

    monkeypatch.setattr(train, "run_task", surrogate_task)
    args = ["search", "--dataset", config.dataset, "--seed", str(config.seed), "--out", config.out,
            "--resume", "--generations", "4", "--population", "8", "--workers", "1"]
    cfg = tmp_path / "c.toml"
    cfg.write_text("max_blocks = 4\nmax_filters = 32\nelitism = 0.25\n")
    result = CliRunner().invoke(main, [*args, "--config", str(cfg)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert "Traceback" not in result.output


def test_an_npz_declaring_a_huge_array_is_a_data_error(tmp_path):
    import zipfile

    from moncae.data import load_dataset

    path = tmp_path / "huge.npz"
    x = np.zeros((10, 4, 4), np.uint8)
    np.savez(path, x_train=x, y_train=np.zeros(10, np.int64), x_test=x, y_test=np.zeros(10, np.int64))
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["x_train.npy"] = members["x_train.npy"].replace(b"(10, 4, 4)", b"(10000000000000, 4, 4)")
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(MoncaeError, match="declares shape"):
        load_dataset(str(path))


def test_config_json_is_strict_json(stub_config):
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    text = (config.run_dir / "config.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


# -- 1 for real: a full temp folder while Keras saves the models (root only: a 16 KiB tmpfs) ----
@pytest.fixture
def tiny_tmpfs(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a 16 KiB tmpfs (the disk-full case)")
    where = tmp_path / "tiny"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)]).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    yield where
    subprocess.run(["umount", str(where)], check=False)


@pytest.mark.slow  # trains 7 tiny models twice
def test_a_full_temp_folder_stops_the_search_and_resume_completes_the_run(tiny_tmpfs, tmp_path):
    args = [sys.executable, "-m", "moncae", "search", "--dataset", "mnist_5k", "--preset", "smoke", "--seed",
            "7", "--out", str(tmp_path / "out"), "--quiet"]
    full = subprocess.run(args, env={**os.environ, "TMPDIR": str(tiny_tmpfs)}, capture_output=True, text=True)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "No space left" in full.stderr and "--resume" in full.stderr
    assert "Traceback" not in full.stderr
    journal = tmp_path / "out" / "mnist_5k" / "seed-7" / "evaluations.csv"
    assert not journal.exists() or (pd.read_csv(journal)["status"] == "ok").all()  # no failure journaled
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4/4 final models trained, 4 with their model on disk" in resumed.stdout
    assert (pd.read_csv(journal)["status"] == "ok").all()


def test_a_journal_from_before_the_flops_and_latency_columns_resumes(stub_config, tmp_path):
    """A run folder the previous release started (no `flops`, `latency_ms` in evaluations.csv)
    resumes: its header is kept, new rows leave those columns out, the run equals an
    uninterrupted one in every other column."""
    from moncae.evaluation.records import NEW_EVAL_COLUMNS

    reference = run_search(stub_config(tmp_path / "ref"), task_fn=surrogate_task).run_dir
    config = stub_config(tmp_path / "old")
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(12))
    journal = config.run_dir / "evaluations.csv"
    # as text: pandas < 3.1 reads floats inexactly (0.06186733976225168 -> 0.0618673397622516)
    old = pd.read_csv(journal, dtype=str, keep_default_na=False).drop(columns=list(NEW_EVAL_COLUMNS))
    old.to_csv(journal, index=False)  # as the previous release wrote it
    run_search(config, resume=True, task_fn=surrogate_task)
    resumed = pd.read_csv(journal)
    assert not set(NEW_EVAL_COLUMNS) & set(resumed.columns) and len(resumed) > len(old)
    expected = pd.read_csv(reference / "evaluations.csv").drop(columns=list(NEW_EVAL_COLUMNS))
    timing = ["fit_seconds", "seconds"]
    pd.testing.assert_frame_equal(resumed.drop(columns=timing), expected.drop(columns=timing), check_exact=True)
    def table(folder, name):
        return pd.read_csv(folder / name).drop(columns=["seconds"], errors="ignore")

    for name in ("population.csv", "generations.csv", "pareto_front.csv"):
        pd.testing.assert_frame_equal(table(config.run_dir, name), table(reference, name), check_exact=True)


def test_resume_where_no_run_was_started_says_it_starts_one(stub_config):
    heard = Messages()
    config = stub_config()
    run_search(config, resume=True, task_fn=surrogate_task, progress=heard)
    assert heard.lines[0] == f"{config.run_dir}: no run to resume there yet; starting it"
    heard.lines.clear()
    run_search(config, resume=True, task_fn=surrogate_task, progress=heard)
    assert not any("no run to resume" in m for m in heard.lines)  # now there is one: complete


@pytest.mark.parametrize("finished", [False, True])
def test_generation_rows_cut_from_generations_csv_are_put_back_from_the_checkpoint(stub_config, tmp_path,
                                                                                   reference, finished):
    config = stub_config(tmp_path / "cut")
    if finished:
        run_search(config, task_fn=with_model)
    else:
        with pytest.raises(Crash):
            run_search(config, task_fn=crashing_after(11, with_model))  # mid generation 1
    path = config.run_dir / "generations.csv"
    before = pd.read_csv(path)["seconds"]
    path.write_text(path.read_text().splitlines(keepends=True)[0])  # the header alone
    heard = Messages()
    run_search(config, resume=True, task_fn=with_model, progress=heard)
    said = [m for m in heard.lines if "put back from the checkpoint's log" in m]
    assert len(said) == 1 and "seconds unknown" not in said[0]
    assert_same(reference, config.run_dir, dtype=TEXT)  # timing aside, as if never cut
    # the checkpoint's log keeps each generation's seconds: put back as they were
    assert list(pd.read_csv(path)["seconds"][:len(before)]) == list(before)


def test_generation_rows_put_back_from_an_older_checkpoint_have_no_seconds(stub_config, tmp_path):
    """A checkpoint written before its log kept the seconds: the rows come back without them."""
    config = stub_config(tmp_path / "old")
    run_search(config, task_fn=with_model)
    checkpoint = json.loads((config.run_dir / "checkpoint.json").read_text())
    for row in checkpoint["logbook"]:
        del row["seconds"]
    (config.run_dir / "checkpoint.json").write_text(json.dumps(checkpoint))
    path = config.run_dir / "generations.csv"
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    heard = Messages()
    run_search(config, resume=True, task_fn=with_model, progress=heard)
    assert any("put back from the checkpoint's log, their seconds unknown" in m for m in heard.lines)
    assert pd.read_csv(path)["seconds"].isna().all()


def test_a_resume_within_generation_0_says_what_it_reuses(stub_config):
    config = stub_config()
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(3, with_model))  # no checkpoint yet
    heard = Messages()
    run_search(config, resume=True, task_fn=with_model, progress=heard)
    assert f"resuming {config.run_dir} from its journal (3 trainings reused)" in heard.lines


def test_a_training_lost_with_its_worker_is_said_not_only_journaled(stub_config):
    """Trainings whose worker died each time were recorded failed in silence, and the run said
    "done" (a helper's audit)."""
    config = stub_config(generations=1)
    first = []

    def task(t):
        if not first:
            first.append(t.key)
            return EvalResult(failed_record(t, "its worker process died each time it ran this evaluation "
                                               "(2 times; killed by SIGKILL): ...", failure="lost"))
        return with_model(t)

    heard = Messages()
    run_search(config, task_fn=task, progress=heard)
    assert [line for line in heard.lines if "recorded failed" in line] == [
        f"{first[0]} (generation 1, rung 0) is recorded failed: its worker process died each time it ran this "
        "evaluation (2 times; killed by SIGKILL): ... (a --resume of this run trains it again where it meets it)"]


def test_a_resume_counts_generations_from_1_as_the_progress_lines_do(stub_config):
    """It said "after generation 2" of a run whose progress had shown gen 3/4 done (a helper's audit)."""
    config = stub_config()
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(12, with_model))
    done = len(pd.read_csv(config.run_dir / "generations.csv"))
    heard = Messages()
    run_search(config, resume=True, task_fn=with_model, progress=heard)
    assert any(line.startswith(f"resuming {config.run_dir} after generation {done} (") for line in heard.lines), \
        (done, heard.lines)


def test_a_killed_writes_temporary_files_go_when_the_folder_is_next_locked(stub_config, tmp_path):
    """SIGKILL inside an atomic write leaves `.NAME.XXXXXXXX.tmp` (up to a model's size); the next
    command that locks the folder removes them, and they never count as results."""
    config = stub_config(generations=2)
    result = run_search(config, task_fn=with_model)
    run = config.run_dir
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    left = [run / ".evaluations.csv.ab12cd_3.tmp", run / "models" / ".0123abcd.keras.zz99yy88.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    mine = run / ".notes.tmp"  # not a name moncae writes: kept
    mine.write_text("mine")
    run_search(config, resume=True, task_fn=with_model)
    assert not any(p.exists() for p in left) and mine.read_text() == "mine"
    assert_same(copy, result.run_dir)
    fresh = RunFolder(tmp_path / "fresh")
    fresh.path.mkdir()
    (fresh.path / ".config.json.a1b2c3d4.tmp").write_text("{")
    assert not fresh.has_results()


def test_json_nested_too_deep_is_damage_not_a_traceback(stub_config, tmp_path):
    """`[[[[...]]]]` 100,000 deep in a run's JSON files (a helper's fuzzing): one-line errors."""
    config = stub_config(tmp_path / "r")
    run_search(config, task_fn=with_model)
    deep = "[" * 100_000 + "]" * 100_000
    (config.run_dir / "checkpoint.json").write_text(deep)
    with pytest.raises(RunFolderError, match="checkpoint.json is damaged"):
        run_search(config, resume=True, task_fn=with_model)
    (config.run_dir / "config.json").write_text(deep)
    with pytest.raises(RunFolderError, match="config.json is corrupt"):
        RunFolder(config.run_dir).read_config()
    with pytest.warns(ReportWarning, match="not a valid moncae run configuration"), \
            pytest.raises(RunFolderError, match="no run .* can be reported"):
        collect_runs(tmp_path / "r")


def test_a_model_file_too_large_or_too_deep_to_read_is_not_unpacked(tmp_path, tiny_npz):
    import zipfile

    from moncae.config import SearchConfig
    from moncae.data import cached_dataset
    from moncae.export.front import MAX_MODEL_CONFIG_BYTES, _input_shape

    deep, bomb = tmp_path / "deep.keras", tmp_path / "bomb.keras"
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("config.json", "[" * 100_000 + "]" * 100_000)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", " " * (MAX_MODEL_CONFIG_BYTES + 1))
    config = SearchConfig(dataset=str(tiny_npz))
    assert _input_shape(config, [deep, bomb]) == cached_dataset(config.data_spec()).input_shape  # the data's


def test_the_model_index_file_column_never_leads_outside_the_run_folder(stub_config, tmp_path):
    """The index names each final model's file; the tools use the name the key gives, whatever the
    column says (a helper's audit: an absolute or ../ path there was followed)."""
    from moncae.export.front import _model_files
    from moncae.finetune.run import final_models
    from moncae.store import model_filename

    config = stub_config(tmp_path / "r")
    run_search(config, task_fn=with_model)
    run = RunFolder(config.run_dir)
    outside = tmp_path / "outside.keras"
    outside.write_bytes(b"not yours")
    index = pd.read_csv(run.model_index, dtype=str, keep_default_na=False)
    assert (index["file"] == index["genome_key"].map(model_filename)).all()  # as the search writes it
    index["file"] = str(outside)
    index.to_csv(run.model_index, index=False)
    files = _model_files(run.model_index, run.models).files
    assert files and all(path.parent == run.models for path in files.values())
    shape = np.load(config.dataset)["x_train"].shape[1:] + (1,)
    assert all(m.model_file.parent == run.models for m in final_models(run, shape) if m.model_file)


@pytest.mark.parametrize("command, said", [
    ("finetune", "Stopped by Ctrl-C; the models fine-tuned before are kept: run the same command again to go on"),
    ("export", "Stopped by Ctrl-C; nothing half-written is kept: run the same command again"),
])
def test_a_stop_says_how_to_go_on_for_the_command_stopped(tmp_path, monkeypatch, command, said):
    """Not the search's journal and --resume for a command that has neither (an audit)."""
    import moncae.cli.main as cli_main

    def interrupted(self, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.click.Command, "invoke", interrupted)
    extra = ["out", "--knee"] if command == "export" else []
    result = CliRunner().invoke(main, [command, str(tmp_path), *extra])
    assert result.exit_code == 130, result.output
    assert result.output.strip() == said


def test_a_dataset_file_rewritten_mid_run_stops_the_search_and_resume_refuses_it(tmp_path):
    """The trainings after the change would have been scored on other images, silently, under the
    fingerprint config.json keeps (an audit): they are refused, and the original file resumes."""
    from moncae.search.loop import SearchProgress

    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (96, 16, 16), dtype=np.uint8),
              "x_test": rng.integers(0, 256, (32, 16, 16), dtype=np.uint8)}
    data = tmp_path / "mine.npz"
    np.savez(data, **arrays)

    class Rewrite(SearchProgress):
        def generation_done(self, *args, **kwargs):
            np.savez(data, x_train=np.zeros_like(arrays["x_train"]), x_test=arrays["x_test"])

    config = resolve_config(dataset=str(data), seed=3, out=str(tmp_path / "r"), generations=3, population=6,
                            max_blocks=3, max_filters=16)
    with pytest.raises(StoppedOnIO, match="the dataset .*mine.npz changed while the run went on"):
        run_search(config, progress=Rewrite(), task_fn=surrogate_task)
    journal = pd.read_csv(config.run_dir / "evaluations.csv")
    assert (journal["status"] == "ok").all() and journal["generation"].max() == 0
    with pytest.raises(RunFolderError, match="not the data"):
        run_search(config, resume=True, task_fn=surrogate_task)
    np.savez(data, **arrays)  # the original back: the run goes on as if never stopped
    resumed = run_search(config, resume=True, task_fn=surrogate_task)
    straight = run_search(resolve_config(dataset=str(data), seed=3, out=str(tmp_path / "s"), generations=3,
                                         population=6, max_blocks=3, max_filters=16), task_fn=surrogate_task)
    assert_same(straight.run_dir, resumed.run_dir)


def test_a_dry_run_of_a_resume_says_the_data_file_changed_as_the_resume_refuses_it(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "mine.npz"
    np.savez(data, x_train=rng.integers(0, 256, (96, 16, 16), dtype=np.uint8),
             x_test=rng.integers(0, 256, (32, 16, 16), dtype=np.uint8))
    config = resolve_config(dataset=str(data), seed=3, out=str(tmp_path / "r"), generations=2, population=4)
    run_search(config, task_fn=surrogate_task)
    np.savez(data, x_train=np.zeros((96, 16, 16), np.uint8), x_test=np.zeros((32, 16, 16), np.uint8))
    args = ["search", "--dataset", str(data), "--seed", "3", "--generations", "2", "--population", "4",
            "--out", str(tmp_path / "r"), "--resume"]
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "--resume would refuse" in dry.output and f"the file {data} changed since" in dry.output
    real = CliRunner().invoke(main, args)
    assert real.exit_code == 2
    assert f"the file {data} changed since: put back the one the search ran on" in real.output
