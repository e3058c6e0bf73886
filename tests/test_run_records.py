"""The run folder's records, field by field: the checkpoint's round trip and validation, the
evaluations journal's rung rule, the generations rows put back on resume, the model index."""
from __future__ import annotations

import hashlib
import json
import math
import warnings

import pytest

from moncae.errors import RunFolderError, RunFolderWarning
from moncae.evaluation.records import EvalRecord
from moncae.store.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from moncae.store.run_folder import GENERATION_COLUMNS, RunFolder, model_filename


def _checkpoint(**kw) -> Checkpoint:
    import random

    base = dict(generation=1, population=[{"genes": [1, 2]}], rng_state=random.Random(3).getstate(),
                logbook=[{"gen": 0, "best_rec_loss": math.nan, "seconds": 1.5}],
                halloffame=[{"genes": [1, 2], "key": "k", "objectives": [0.1, 2.0]}])
    return Checkpoint(**{**base, **kw})


def test_a_checkpoint_round_trip_keeps_a_nan_of_the_log_as_nan(tmp_path):
    path = tmp_path / "checkpoint.json"
    save_checkpoint(path, _checkpoint())
    loaded = load_checkpoint(path)
    assert math.isnan(loaded.logbook[0]["best_rec_loss"]) and loaded.logbook[0]["seconds"] == 1.5


@pytest.mark.parametrize("change", [
    {"version": 3},
    {"generation": -1},
    {"halloffame": [{"genes": [1, 2], "key": "k", "objectives": ["0.1", 2.0]}]},
    {"waiting": [["k", -1]]},
    {"waiting": [["k", "0"]]},
], ids=["version", "generation", "objectives", "waiting-negative", "waiting-text"])
def test_a_checkpoint_with_a_bad_field_is_refused(tmp_path, change):
    path = tmp_path / "checkpoint.json"
    save_checkpoint(path, _checkpoint())
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **change}))
    with pytest.raises(RunFolderError, match="is damaged"):
        load_checkpoint(path)


def _record(key, rung, status="ok", loss=0.1):
    return EvalRecord(key, "arch", loss, 2.0, "8", 10, 1, 1.0, 1.0, status, generation=0, rung=rung)


def test_a_second_row_for_one_key_and_rung_is_not_taken_for_the_next_rung(tmp_path):
    run = RunFolder(tmp_path)
    for rec in (_record("k", 0, loss=0.5), _record("k", 0, loss=0.4)):
        run.append_evaluation(rec, ["g0"], [1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = run.read_evaluations()
    assert [r.rec_loss for r in cache["k"]] == [0.5]
    assert any(issubclass(w.category, RunFolderWarning) for w in caught)


def test_an_unknown_status_in_the_journal_is_an_error(tmp_path):
    run = RunFolder(tmp_path)
    run.append_evaluation(_record("k", 0, status="okay"), ["g0"], [1])
    with pytest.raises(RunFolderError, match="unknown status"):
        run.read_evaluations()


def test_generations_put_back_stay_in_order(tmp_path):
    run = RunFolder(tmp_path)
    for gen in (0, 2):
        run.append_generation({"generation": gen, "seconds": 1.0})
    assert run.restore_generations([{"gen": g, "seconds": 1.0} for g in (0, 1, 2)]) == [1]
    rows = run.generations.read_text().splitlines()
    assert rows[0] == ",".join(GENERATION_COLUMNS)
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]


def test_model_files_keep_their_names_across_versions():
    # run folders written by earlier versions name models so; a change loses every saved model
    assert model_filename("abc") == hashlib.sha256(b"abc").hexdigest()[:16] + ".keras"
    assert model_filename("abc") == "ba7816bf8f01cfea.keras"


def test_the_model_index_says_missing_and_the_rung_models_go(tmp_path):
    run = RunFolder(tmp_path)
    run.save_model_bytes("kept", b"x", rung=0)  # models/KEY and models/rungs/KEY.r0
    index = run.write_model_index(["kept", "gone"], ["ok", "ok"])
    assert index == 1
    lines = run.model_index.read_text().splitlines()
    assert lines[2].endswith(",,missing")
    assert not (run.models / "rungs").exists()
