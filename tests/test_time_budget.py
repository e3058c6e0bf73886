"""The search's time budget (`max_minutes`): the rule, and a surrogate search on a fake clock
(every generation takes 30 s of it) that the budget ends early."""

from __future__ import annotations

import math
import types

import pandas as pd
import pytest
from click.testing import CliRunner

from moncae.cli.main import main
from moncae.errors import MoncaeError, RunFolderError
from moncae.report import ReportWarning
from moncae.report.collect import collect_runs
from moncae.search import loop
from moncae.search.loop import run_search
from moncae.search.time_budget import budget_ends, used_minutes
from tests.runs import WITH_INDEX, Crash, Messages, assert_same, resume_after_crash, with_model

RUNGS = {"fidelity": "rungs", "rungs": [[1, 40]], "promote": 0.34}
SETTINGS = [{}, RUNGS]  # full fidelity, and rungs (the last generation promotes every genome)


# --- the rule --------------------------------------------------------------------------------

def test_no_budget_or_no_generation_yet_never_ends_the_search():
    assert not budget_ends([600.0, 600.0], 0)
    assert not budget_ends([], 0.001)  # the first generation gives the estimate


def test_the_next_generation_is_the_last_when_another_like_the_longest_would_not_fit():
    assert not budget_ends([30.0, 30.0, 30.0], 2.0)  # 90 s + 30 s = the 2 minutes: it fits
    assert budget_ends([30.0, 30.0, 30.0, 30.0], 2.0)
    assert budget_ends([10.0, 100.0], 3.0)  # 110 s + the longest, 100 s > 180 s
    assert not budget_ends([10.0, 60.0], 3.0)  # 70 + 60 <= 180


def test_generations_of_unknown_length_count_as_nothing():
    assert not budget_ends([float("nan"), None, 30.0], 1.0)  # 30 + 30 <= 60
    assert used_minutes([float("nan"), None, 30.0, 90.0]) == 2.0


def test_max_minutes_is_checked(stub_config):
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(MoncaeError, match="`max_minutes` must be a finite number of minutes >= 0"):
            stub_config(max_minutes=bad)
    assert stub_config(max_minutes=2).results_settings()["max_minutes"] == 2


# --- a search on a fake clock ---------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    """The search loop's clock advances 30 s per reading: each generation (from one reading to the
    next) takes 30 s."""
    now = [0.0]

    def perf_counter():
        now[0] += 30.0
        return now[0]

    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=perf_counter))


def test_the_budget_says_whether_it_is_used_up_or_another_generation_would_not_fit(stub_config, tmp_path, clock):
    heard = Messages()
    run_search(stub_config(tmp_path / "b", generations=8, max_minutes=2.2), task_fn=with_model, progress=heard)
    assert [m for m in heard.lines if m.startswith("time budget")] == [
        "time budget: generation 5 is the last of 8 (2.00 of 2.2 min used; another generation as long "
        "as the longest so far would not fit)"]


@pytest.mark.parametrize("settings", SETTINGS)
def test_the_budget_ends_the_search_as_a_run_of_that_many_generations(stub_config, tmp_path, clock, settings):
    heard = Messages()
    budgeted = run_search(stub_config(tmp_path / "b", generations=8, max_minutes=2, **settings),
                          task_fn=with_model, progress=heard)
    # after 4 generations (2 minutes), a fifth of 30 s does not fit: the fifth is the last
    assert len(budgeted.logbook) == 5 and len(budgeted.hypervolumes) == 5
    assert [m for m in heard.lines if m.startswith("time budget")] == [
        "time budget: generation 5 is the last of 8 (2.00 of 2 min used; the budget is used up; this one "
        "ends the run)"]
    plain = run_search(stub_config(tmp_path / "p", generations=5, **settings), task_fn=with_model)
    assert_same(plain.run_dir, budgeted.run_dir, names=WITH_INDEX)
    assert budgeted.models_saved == plain.models_saved > 0


def test_a_budget_that_is_never_reached_changes_nothing(stub_config, tmp_path, clock):
    budgeted = run_search(stub_config(tmp_path / "b", max_minutes=60), task_fn=with_model)
    plain = run_search(stub_config(tmp_path / "p"), task_fn=with_model)
    assert len(budgeted.logbook) == 4
    assert_same(plain.run_dir, budgeted.run_dir, names=WITH_INDEX)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("where", ["middle", "last generation"])
def test_a_crash_resumes_to_the_uninterrupted_budgeted_run(stub_config, tmp_path, clock, settings, where):
    """The decision goes by the checkpoint's seconds. (With this clock a generation cut in the
    middle takes its 30 s again after the resume; on a real one it counts only its time after the
    resume, so the run can end a generation later: README, "A time budget".)"""
    reference = run_search(stub_config(tmp_path / "ref", generations=8, max_minutes=2, **settings),
                           task_fn=with_model).run_dir
    ev = pd.read_csv(reference / "evaluations.csv")
    crash = len(ev) // 2 if where == "middle" else int(ev[ev["generation"] == 4].index[-1])
    config = stub_config(tmp_path / "crash", generations=8, max_minutes=2, **settings)
    resumed = resume_after_crash(config, crash, with_model)
    assert len(resumed.logbook) == 5
    assert_same(reference, config.run_dir, names=WITH_INDEX)


def test_a_finished_budgeted_run_resumes_as_complete_and_keeps_its_budget(stub_config, tmp_path, clock):
    config = stub_config(tmp_path / "b", generations=8, max_minutes=2)
    run_search(config, task_fn=with_model)

    def no_training(task):
        raise AssertionError(f"trained {task}")

    heard = Messages()
    again = run_search(config, resume=True, task_fn=no_training, progress=heard)
    assert len(again.logbook) == 5
    assert f"{config.run_dir} is already complete (5 generations of 8: its time budget ended it)" in heard.lines
    with pytest.raises(RunFolderError, match="max_minutes: 2.0 -> 3.0"):
        run_search(stub_config(tmp_path / "b", generations=8, max_minutes=3), resume=True, task_fn=no_training)
    for other in (5, 4, 9):  # its length, shorter or longer: the budget is why (a helper's audit)
        with pytest.raises(RunFolderError, match=f"with {other} generations instead of 8: its time budget"):
            run_search(stub_config(tmp_path / "b", generations=other, max_minutes=2), resume=True,
                       task_fn=no_training)


def test_the_report_counts_a_budgeted_run_as_finished(stub_config, tmp_path, clock):
    config = stub_config(tmp_path / "b", generations=8, max_minutes=2)
    run_search(config, task_fn=with_model)
    with pytest.warns(ReportWarning, match="ended by its time budget") as seen:
        (run,) = collect_runs(tmp_path / "b")
    assert run.finished and (run.generations_done, run.generations) == (5, 8)
    assert not any("stopped after generation" in str(w.message) for w in seen)


def test_the_cli_takes_max_minutes_and_refuses_a_negative_one(tiny_npz, tmp_path):
    runner = CliRunner()
    args = ["search", "--dataset", str(tiny_npz), "--seed", "1", "--out", str(tmp_path)]
    bad = runner.invoke(main, [*args, "--max-minutes", "-1"])
    assert bad.exit_code == 2 and "max_minutes" in bad.output and "Traceback" not in bad.output
    dry = runner.invoke(main, [*args, "--max-minutes", "25", "--dry-run"])
    assert dry.exit_code == 0 and "max_minutes = 25.0" in dry.output


@pytest.fixture
def work_clock(monkeypatch):
    """The search loop's clock advances 10 s per training (`charged(task_fn)` counts them), so a
    generation replayed from the journal alone takes none of it."""
    now = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    def charged(task_fn):
        def task(t):
            now[0] += 10.0
            return task_fn(t)
        return task

    return charged


def test_a_generation_replayed_after_its_row_keeps_its_seconds(stub_config, tmp_path, work_clock, monkeypatch):
    """A stop after a generation's generations.csv row but before its checkpoint: the resume runs it
    again from the journal, with the seconds it took, so the budget decides as before."""
    from moncae.store import RunFolder

    settings = {"generations": 8, "max_minutes": 3}
    reference = run_search(stub_config(tmp_path / "ref", **settings), task_fn=work_clock(with_model))
    config = stub_config(tmp_path / "cut", **settings)
    save = RunFolder.save_checkpoint

    def stop_at_generation_2(self, state):
        if state.generation == 2:
            raise Crash
        save(self, state)

    monkeypatch.setattr(RunFolder, "save_checkpoint", stop_at_generation_2)
    with pytest.raises(Crash):
        run_search(config, task_fn=work_clock(with_model))
    monkeypatch.setattr(RunFolder, "save_checkpoint", save)
    resumed = run_search(config, resume=True, task_fn=work_clock(with_model))
    assert len(resumed.logbook) == len(reference.logbook) < 8
    assert_same(reference.run_dir, resumed.run_dir, names=WITH_INDEX)
    seconds = [pd.read_csv(r.run_dir / "generations.csv")["seconds"].tolist() for r in (reference, resumed)]
    assert seconds[0] == seconds[1]
