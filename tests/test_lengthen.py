"""A resume with more generations (`--resume --generations N`): a finished run made longer takes
its last generation again as an ordinary one and ends as the run of N generations from the start."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from moncae.errors import RunFolderError
from moncae.search.loop import run_search
from moncae.store import RunFolder
from tests.runs import CSVS, WITH_INDEX, Crash, Messages, assert_same, crashing_after, with_model

RUNGS = {"fidelity": "rungs", "rungs": [[1, 40]], "promote": 0.34}
SEARCHES = {  # each with the settings it is lengthened with
    "moncae": {},
    "moncae, rungs": RUNGS,
    "moncae, rungs, front": {**RUNGS, "final": "front"},
    "nsga2": {"strategy": "nsga2"},
    "mu-plus-lambda, rungs": {"strategy": "mu-plus-lambda", **RUNGS},
    "random": {"strategy": "random"},
}


def no_training(task):
    raise AssertionError(f"trained {task.genome_key}")


def _longer(stub_config, tmp_path, settings, short=3, long=6):
    """A run of `short` generations lengthened to `long`, and one of `long` from the start."""
    heard = Messages()
    first = run_search(stub_config(tmp_path / "short", generations=short, **settings), task_fn=with_model)
    heard.journaled = len(pd.read_csv(first.run_dir / "evaluations.csv"))
    lengthened = run_search(stub_config(tmp_path / "short", generations=long, **settings), resume=True,
                            task_fn=with_model, progress=heard)
    whole = run_search(stub_config(tmp_path / "whole", generations=long, **settings), task_fn=with_model)
    return lengthened, whole, heard


@pytest.mark.parametrize("name", list(SEARCHES))
def test_a_finished_run_made_longer_equals_the_longer_run(stub_config, tmp_path, name):
    lengthened, whole, heard = _longer(stub_config, tmp_path, SEARCHES[name])
    assert len(lengthened.logbook) == 6
    assert_same(whole.run_dir, lengthened.run_dir, names=WITH_INDEX[1:])  # all but the journal
    assert lengthened.models_saved == whole.models_saved > 0
    assert heard.lines[:2] == [f"{lengthened.run_dir}: 3 -> 6 generations",
                               f"{lengthened.run_dir}: its last generation (3) runs again as an ordinary one "
                               f"({heard.journaled} trainings reused)"]
    assert not any("warning" in m for m in heard.lines)  # every model trained again as it was
    if name == "moncae, rungs, front":  # a front network left out of the old final front: its model
        assert any("not journaled again" in m for m in heard.lines)  # is made again for the new one
    long, short = (pd.read_csv(r.run_dir / "evaluations.csv") for r in (whole, lengthened))
    if not SEARCHES[name].get("fidelity"):  # one rung: every training of the old last generation is
        assert_same(whole.run_dir, lengthened.run_dir, names=CSVS[:1])  # met again, as it was
        return
    # with rungs, the old last generation promoted every genome: each training of the longer run is
    # in the journal, and the rest are that generation's promotions, kept on record
    key = ["genome_key", "rung", "rec_loss", "loc"]
    merged = long[key].merge(short[key], how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    extra = short[key].merge(long[key], how="left", indicator=True)
    extra = short[(extra["_merge"] == "left_only").to_numpy()]
    assert set(extra["generation"]) <= {2} and (extra["rung"] > 0).all()


@pytest.mark.parametrize(("seed", "lengths", "settings"), [
    (10, (2, 3, 5), {"final": "front", "promote": 0.2}), (8, (3, 4, 5), {"strategy": "nsga2"})])
def test_a_run_made_longer_twice_equals_the_longer_run(tmp_path, seed, lengths, settings):
    """The second lengthening holds back again what the first one's last generation took from the
    old journal (the cases a helper's audit found, on mnist_5k's shape, surrogate trainings)."""
    from moncae.config import resolve_config

    def config(out, generations):
        return resolve_config(preset="smoke", dataset="mnist_5k", seed=seed, out=str(tmp_path / out),
                              generations=generations, population=8, workers=1, max_blocks=4, max_filters=32,
                              **{**RUNGS, "rungs": [[1, 100]], **settings})

    whole = run_search(config("whole", lengths[-1]), task_fn=with_model)
    for i, n in enumerate(lengths):
        lengthened = run_search(config("longer", n), resume=i > 0, task_fn=with_model)
    assert_same(whole.run_dir, lengthened.run_dir, names=WITH_INDEX[1:])
    assert [(e["from"], e["to"]) for e in RunFolder(lengthened.run_dir).read_config()["lengthened"]] == \
        list(zip(lengths, lengths[1:]))


def test_config_json_records_the_new_length(stub_config, tmp_path):
    lengthened, _, _ = _longer(stub_config, tmp_path, {})
    payload = RunFolder(lengthened.run_dir).read_config()
    assert payload["settings"]["generations"] == payload["run"]["generations"] == 6
    assert [(e["from"], e["to"]) for e in payload["lengthened"]] == [(3, 6)]
    again = Messages()  # now it is a finished run of 6 generations
    run_search(stub_config(tmp_path / "short", generations=6), resume=True, task_fn=no_training, progress=again)
    assert f"{lengthened.run_dir} is already complete (6 generations)" in again.lines


@pytest.mark.parametrize("when", [0.0, 0.5, 0.95])
def test_a_crash_while_lengthening_resumes_to_the_longer_run(stub_config, tmp_path, when):
    run_search(stub_config(tmp_path / "ref", generations=3, **RUNGS), task_fn=with_model)
    before = len(pd.read_csv(stub_config(tmp_path / "ref").run_dir / "evaluations.csv"))
    reference = run_search(stub_config(tmp_path / "ref", generations=6, **RUNGS), resume=True,
                           task_fn=with_model).run_dir
    crash_after = int(when * (len(pd.read_csv(reference / "evaluations.csv")) - before))  # of the new trainings
    run_search(stub_config(tmp_path / "crash", generations=3, **RUNGS), task_fn=with_model)
    with pytest.raises(Crash):
        run_search(stub_config(tmp_path / "crash", generations=6, **RUNGS), resume=True,
                   task_fn=crashing_after(crash_after, with_model))
    assert not (RunFolder(stub_config(tmp_path / "crash").run_dir).model_index).exists()  # unfinished now
    resumed = run_search(stub_config(tmp_path / "crash", generations=6, **RUNGS), resume=True, task_fn=with_model)
    assert_same(reference, resumed.run_dir, names=WITH_INDEX)


def test_an_interrupted_run_takes_another_length_above_what_it_has_done(stub_config, tmp_path):
    with pytest.raises(Crash):
        run_search(stub_config(tmp_path / "cut", generations=8), task_fn=crashing_after(14, with_model))
    heard = Messages()
    resumed = run_search(stub_config(tmp_path / "cut", generations=5), resume=True, task_fn=with_model,
                         progress=heard)
    assert f"{resumed.run_dir}: 8 -> 5 generations (fewer than it was started with: it ends after generation 5)" \
        in heard.lines
    whole = run_search(stub_config(tmp_path / "whole", generations=5), task_fn=with_model)
    assert_same(whole.run_dir, resumed.run_dir, names=WITH_INDEX)
    with pytest.raises(Crash):
        run_search(stub_config(tmp_path / "cut2", generations=8), task_fn=crashing_after(14, with_model))
    done = len(json.loads((stub_config(tmp_path / "cut2").run_dir / "checkpoint.json").read_text())["logbook"])
    with pytest.raises(RunFolderError, match=f"it has done {done} generation\\(s\\) already; ask for more"):
        run_search(stub_config(tmp_path / "cut2", generations=done), resume=True, task_fn=no_training)


@pytest.mark.parametrize(("settings", "why"), [
    ({"generations": 2}, "it finished after 3 generation\\(s\\) and cannot be made shorter"),
    ({"strategy": "metaqnn"}, "metaqnn's exploration schedule is set by the number of generations"),
    ({"inherit": True}, "its children would inherit the weights of networks whose models the finished run no "
                        "longer keeps"),
    ({"max_minutes": 60}, "its time budget"),
])
def test_a_longer_run_that_would_not_be_the_same_is_refused(stub_config, tmp_path, settings, why):
    base = {k: v for k, v in settings.items() if k != "generations"}
    config = stub_config(tmp_path / "r", generations=3, **base)
    run_search(config, task_fn=with_model)
    before = {p: p.read_bytes() for p in config.run_dir.rglob("*") if p.is_file()}
    longer = stub_config(tmp_path / "r", **{"generations": 6, **settings})
    with pytest.raises(RunFolderError, match=f"with {longer.generations} generations instead of 3: {why}.*; use "
                                             "--generations 3, or start a run of"):
        run_search(longer, resume=True, task_fn=no_training)
    assert {p: p.read_bytes() for p in config.run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == \
        {p: b for p, b in before.items() if p.name != ".lock"}  # nothing written


def test_a_fine_tuned_run_is_not_lengthened_under_its_fine_tune(stub_config, tmp_path):
    config = stub_config(tmp_path / "r", generations=3)
    run_search(config, task_fn=with_model)
    (config.run_dir / "finetune.csv").write_text("individual\n")
    with pytest.raises(RunFolderError, match=r"its fine-tune \(finetune.csv\) would no longer match its final "
                                             "models: move that away first"):
        run_search(stub_config(tmp_path / "r", generations=6), resume=True, task_fn=no_training)


def test_a_run_finished_before_the_front_was_kept_is_not_lengthened(stub_config, tmp_path):
    config = stub_config(tmp_path / "r", generations=3)
    run_search(config, task_fn=with_model)
    path = config.run_dir / "checkpoint.json"
    checkpoint = json.loads(path.read_text())
    del checkpoint["last_halloffame"]
    path.write_text(json.dumps(checkpoint))
    with pytest.raises(RunFolderError, match="finished by an older moncae"):
        run_search(stub_config(tmp_path / "r", generations=6), resume=True, task_fn=no_training)


def test_other_settings_changed_with_the_length_are_refused_as_before(stub_config, tmp_path):
    run_search(stub_config(tmp_path / "r", generations=3), task_fn=with_model)
    with pytest.raises(RunFolderError, match=r"with different settings \(elitism: 0.25 -> 0.5, generations: 3 -> "
                                             r"6; a --config file sets the run's: elitism = 0.25\)"):
        run_search(stub_config(tmp_path / "r", generations=6, elitism=0.5), resume=True, task_fn=no_training)


def test_a_model_trained_again_to_another_result_is_said_and_the_journal_stands(stub_config, tmp_path):
    settings = SEARCHES["moncae, rungs, front"]
    run_search(stub_config(tmp_path / "r", generations=3, **settings), task_fn=with_model)
    journal = pd.read_csv(stub_config(tmp_path / "r").run_dir / "evaluations.csv")

    def other_machine(task):  # rounds differently
        result = with_model(task)
        result.record.rec_loss += 1e-6
        return result

    heard = Messages()
    run_search(stub_config(tmp_path / "r", generations=6, **settings), resume=True, task_fn=other_machine,
               progress=heard)
    said = [m for m in heard.lines if m.startswith("warning:") and "trained again at rung" in m]
    assert said and all("its journal record stands" in m for m in said)
    after = pd.read_csv(stub_config(tmp_path / "r").run_dir / "evaluations.csv")
    pd.testing.assert_frame_equal(after.iloc[:len(journal)], journal)  # not journaled again


def _record(key, rung, generation):
    from moncae.evaluation.records import EvalRecord

    return EvalRecord(key, "", 0.1 + rung, 1.0, "", 0, 1, 0.0, 0.0, "ok", generation=generation, rung=rung)


def test_a_waiting_training_is_seen_as_of_the_generation_that_reaches_it():
    """A lengthened run's promotion from its old last generation (2), reached in generation 5: the
    search sees it as trained in 5, as the run of that length from the start trained it then."""
    from moncae.method.objective_set import ObjectiveSet
    from moncae.search.trainings import Trainings

    journal = {"a": [_record("a", 0, 1), _record("a", 1, 2)], "b": [_record("b", 0, 2), _record("b", 1, 2)]}
    cache = Trainings(journal, 1, ObjectiveSet(), upto=1)  # generation 2 runs again
    assert cache.reached("a") == 0 and "b" not in cache and cache.journaled() == 4
    assert cache.take("b", 0, 2) and cache.latest("b").generation == 2
    assert cache.still_waiting(2) == [["a", 1], ["b", 1]]  # what its checkpoint holds back
    assert cache.take("a", 1, 5) and cache.latest("a").generation == 5
    assert not cache.take("a", 1, 5)  # once
    again = Trainings(journal, 1, ObjectiveSet(), upto=4, waiting={("b", 1)})  # resumed after generation 4
    assert again.reached("a") == 1 and again.reached("b") == 0 and again.still_waiting(4) == [["b", 1]]


def test_the_old_last_generation_keeps_its_seconds(stub_config, tmp_path):
    """Taken again from the journal alone, it took no time now: generations.csv keeps what it took."""
    config = stub_config(tmp_path / "r", generations=3)
    run_search(config, task_fn=with_model)
    before = pd.read_csv(config.run_dir / "generations.csv")["seconds"].tolist()
    run_search(stub_config(tmp_path / "r", generations=5), resume=True, task_fn=with_model)
    assert pd.read_csv(config.run_dir / "generations.csv")["seconds"].tolist()[:3] == before


def test_a_stop_after_the_longer_run_s_last_checkpoint_keeps_what_it_took_as_of_when(tmp_path, monkeypatch):
    """Killed before pareto_front.csv (the case a helper's audit found: its `generation` column
    went back to the journal's generation for a training taken from the old journal)."""
    from moncae.config import resolve_config
    from moncae.store import RunFolder as Folder

    def config(out, generations):
        return resolve_config(preset="smoke", dataset="mnist_5k", seed=8, out=str(tmp_path / out),
                              generations=generations, population=8, workers=1, max_blocks=4, max_filters=32,
                              fidelity="rungs", rungs=[[1, 40], [2, 80]], promotion="population")

    whole = run_search(config("whole", 5), task_fn=with_model)
    run_search(config("longer", 2), task_fn=with_model)
    run_search(config("longer", 3), resume=True, task_fn=with_model)
    write_front = Folder.write_front

    def killed(self, rows):
        monkeypatch.setattr(Folder, "write_front", write_front)
        raise Crash

    monkeypatch.setattr(Folder, "write_front", killed)
    with pytest.raises(Crash):
        run_search(config("longer", 5), resume=True, task_fn=with_model)
    lengthened = run_search(config("longer", 5), resume=True, task_fn=no_training)
    assert_same(whole.run_dir, lengthened.run_dir, names=WITH_INDEX[1:])
    assert json.loads((lengthened.run_dir / "checkpoint.json").read_text()).get("restamped")  # the case


def test_a_stop_while_a_final_model_is_trained_again_trains_it_to_the_end_on_resume(tmp_path, monkeypatch):
    """Killed after a final network's lower rung was trained again, before its top rung: the
    resume must not take the lower rung's model for the final one (a helper's audit)."""
    from moncae.config import resolve_config
    from moncae.evaluation.records import EvalResult
    from moncae.evaluation.surrogate import surrogate_task
    from moncae.store import RunFolder as Folder

    def trainer(task):  # each model's bytes name the rung that made it
        return EvalResult(surrogate_task(task).record, f"{task.key} rung {task.rung}".encode())

    def config(out, generations):
        return resolve_config(preset="smoke", dataset="mnist_5k", seed=1, out=str(tmp_path / out),
                              generations=generations, population=8, workers=1, max_blocks=4, max_filters=32,
                              fidelity="rungs", rungs=[[1, 40], [2, 80]], final="front")

    whole = run_search(config("whole", 5), task_fn=trainer).run_dir
    run_search(config("longer", 2), task_fn=trainer)
    finished, save = [], Folder.save_checkpoint

    def save_checkpoint(self, state):
        save(self, state)
        finished.append(state.finished)

    def killing(task):  # what trains after the finished checkpoint is the final models' training again
        if finished and finished[-1] and task.rung == 1:
            raise Crash
        return trainer(task)

    monkeypatch.setattr(Folder, "save_checkpoint", save_checkpoint)
    with pytest.raises(Crash):
        run_search(config("longer", 5), resume=True, task_fn=killing)
    monkeypatch.setattr(Folder, "save_checkpoint", save)
    longer = run_search(config("longer", 5), resume=True, task_fn=trainer).run_dir
    assert_same(whole, longer, names=WITH_INDEX[1:])
    models = sorted(p.name for p in (whole / "models").glob("*.keras"))
    assert models and models == sorted(p.name for p in (longer / "models").glob("*.keras"))
    assert [(whole / "models" / m).read_bytes() for m in models] == [(longer / "models" / m).read_bytes()
                                                                      for m in models]


def test_inheriting_runs_whose_models_changed_are_not_lengthened(stub_config, tmp_path):
    """inherit = true: a run stopped in its last generation (which replaced models by promoting
    every genome), and a finished one whose checkpoint is gone, are refused too (a helper's audit)."""
    settings = {**RUNGS, "inherit": True}
    config = stub_config(tmp_path / "cut", generations=3, **settings)
    reference = run_search(stub_config(tmp_path / "ref", generations=3, **settings), task_fn=with_model)
    last = pd.read_csv(reference.run_dir / "evaluations.csv").query("generation == 2").index[0]
    with pytest.raises(Crash):
        run_search(config, task_fn=crashing_after(int(last) + 1, with_model))
    with pytest.raises(RunFolderError, match="its last generation had begun"):
        run_search(stub_config(tmp_path / "cut", generations=6, **settings), resume=True, task_fn=no_training)
    (config.run_dir / "checkpoint.json").unlink()  # judged by its journal then
    with pytest.raises(RunFolderError, match="its last generation had begun"):
        run_search(stub_config(tmp_path / "cut", generations=6, **settings), resume=True, task_fn=no_training)
    (reference.run_dir / "checkpoint.json").unlink()
    with pytest.raises(RunFolderError, match="inherit the weights of networks whose models the finished run"):
        run_search(stub_config(tmp_path / "ref", generations=6, **settings), resume=True, task_fn=no_training)


def test_a_lengthening_stopped_before_its_first_checkpoint_takes_any_length_from_the_old_one(
        stub_config, tmp_path, monkeypatch):
    """Stopped before the old last generation was done again: the run is still the finished one of
    3 generations (its checkpoint), so it can be lengthened to another length above that (not back
    to 3: that generation's rows are the redo's; nor shorter)."""
    whole = run_search(stub_config(tmp_path / "whole", generations=5, **RUNGS), task_fn=with_model).run_dir
    run_search(stub_config(tmp_path / "cut", generations=3, **RUNGS), task_fn=with_model)
    with monkeypatch.context() as patch:
        patch.setattr(RunFolder, "save_checkpoint", lambda self, state: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            run_search(stub_config(tmp_path / "cut", generations=6, **RUNGS), resume=True, task_fn=with_model)
    for n, why in ((2, "it finished after 3 generation\\(s\\) and cannot be made shorter"),
                   (3, "it finished after 3 generation\\(s\\), and a lengthening to 6 has begun .*; ask for "
                       "more than 3; use --generations 6")):
        with pytest.raises(RunFolderError, match=f"with {n} generations instead of 6: {why}"):
            run_search(stub_config(tmp_path / "cut", generations=n, **RUNGS), resume=True, task_fn=no_training)
    resumed = run_search(stub_config(tmp_path / "cut", generations=5, **RUNGS), resume=True, task_fn=with_model)
    assert_same(whole, resumed.run_dir, names=WITH_INDEX[1:])
