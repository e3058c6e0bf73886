"""`moncae finetune` on a smoke-sized run: CSV, latent accuracy, resume, failures, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SMOKE_SEED

from moncae.cli.main import main
from moncae.finetune import FINETUNE_COLUMNS, FinetuneProgress, finetune_run
from moncae.finetune import run as finetune
from moncae.store import MODEL_INDEX_COLUMNS, RunFolder, image_losses_filename, model_filename, write_csv

pytestmark = pytest.mark.slow  # trains real models

SEED = SMOKE_SEED
EPOCHS, CLASSIFIER_EPOCHS = 2, 10


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def search_run(smoke_run) -> Path:
    """A finished smoke search (never modified: tests work on copies)."""
    return smoke_run.run_dir


@pytest.fixture(scope="module")
def finetuned(search_run, tmp_path_factory):
    run = copy_run(search_run, tmp_path_factory.mktemp("ft") / "run")
    return run, finetune_run(run, epochs=EPOCHS, classifier_epochs=CLASSIFIER_EPOCHS)


def test_csv_has_one_row_per_unique_final_genome(search_run, finetuned):
    run, result = finetuned
    index = pd.read_csv(search_run / "models" / "index.csv")
    first = index.drop_duplicates("genome_key")
    df = pd.read_csv(run / "finetune.csv", dtype={"error": str}).fillna({"error": ""})
    assert list(df.columns) == FINETUNE_COLUMNS
    assert list(df["genome_key"]) == list(first["genome_key"])
    assert list(df["individual"]) == list(first["individual"])
    assert len(result.records) == len(df) and result.trained == len(df) and result.skipped == 0
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert ((df["rec_loss"] > 0) & (df["rec_loss"] < 4)).all()
    assert (df["epochs"].between(1, EPOCHS)).all() and (df["finetune_seconds"] > 0).all()
    for _, row in df.iterrows():
        dims = [int(d) for d in row["bottleneck"].split("x")]
        assert row["loc"] == pytest.approx(math.log10(np.prod(dims)))
        assert row["bottleneck"] in row["architecture"]
        assert (run / "finetuned" / model_filename(row["genome_key"])).stat().st_size > 0
    ft_index = pd.read_csv(run / "finetuned" / "index.csv")
    assert list(ft_index.columns) == MODEL_INDEX_COLUMNS
    assert list(ft_index["genome_key"]) == list(index["genome_key"])  # every individual mapped
    assert result.to_frame()["genome_key"].tolist() == df["genome_key"].tolist()


def test_each_model_keeps_its_test_images_losses_beside_it(finetuned):
    """One loss per test image, in the split's order: their mean is the row's test loss, and
    they are the model's own reconstructions scored (not a copy of one number)."""
    import keras

    from moncae.data import cached_dataset
    from moncae.finetune.run import read_run_config
    from moncae.method.image_loss import image_losses

    run, result = finetuned
    data = cached_dataset(read_run_config(run).data_spec())
    for record in result.records:
        losses = np.load(run / "finetuned" / image_losses_filename(record.genome_key), allow_pickle=False)
        assert losses.shape == (len(data.x_test),) and losses.dtype == np.float64
        assert losses.mean() == pytest.approx(record.rec_loss, abs=1e-4)  # Keras: BCE from the logits
        assert losses.std() > 0
        model = keras.saving.load_model(run / "finetuned" / model_filename(record.genome_key), compile=False)
        first = data.x_test[:5]
        expected = image_losses(first, np.asarray(model(first)), read_run_config(run).loss)
        assert losses[:5] == pytest.approx(expected, rel=1e-6)


def test_latent_accuracy_is_real_and_beats_chance(finetuned):
    _, result = finetuned
    for r in result.records:
        assert 0.0 <= r.cl_acc <= 1.0
        assert r.cl_acc > 0.2, r  # 10 classes: chance is 0.1
        assert math.isfinite(r.cl_loss) and r.cl_loss > 0


def test_rerun_skips_done_models(finetuned, monkeypatch):
    run, _ = finetuned
    before = (run / "finetune.csv").read_bytes()
    calls = []
    import moncae.finetune.model

    monkeypatch.setattr(moncae.finetune.model, "finetune_model", lambda *a, **k: calls.append(a))
    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 0, result.output
    assert calls == []
    assert "skipped" in result.output and "ok" in result.output
    assert (run / "finetune.csv").read_bytes() == before


def test_without_epochs_the_run_s_own_finetune_epochs_setting_is_used(search_run, tmp_path):
    """`moncae finetune RUN` with no `--epochs` trains up to the run's `finetune_epochs` (a preset's
    fine-tune budget, e.g. `cpu`'s 2); `--epochs` overrides it."""
    run = copy_run(search_run, tmp_path / "run")
    payload = json.loads((run / "config.json").read_text())
    assert payload["run"]["finetune_epochs"] == 20  # the default, written by the search
    payload["run"]["finetune_epochs"] = 0
    (run / "config.json").write_text(json.dumps(payload))

    result = CliRunner().invoke(main, ["finetune", str(run), "--classifier-epochs", "1", "--quiet"])

    assert result.exit_code == 0, result.output
    assert "skipped; up to 0 epochs each)" in result.output
    assert json.loads((run / "finetune.json").read_text())["settings"]["epochs"] == 0
    df = pd.read_csv(run / "finetune.csv", dtype={"error": str}).fillna({"error": ""})
    assert (df["status"] == "ok").all() and (df["epochs"] == 0).all()
    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", "1", "--classifier-epochs", "1"])
    assert result.exit_code == 2 and "epochs: 0 -> 1" in result.output, result.output


def test_patience_off_trains_every_epoch_and_keeps_the_last_weights(search_run, tmp_path):
    """`--patience off`, the paper's "extra 20 epochs": every model trains every epoch, and its
    fine-tuned weights stand even where the searched ones scored better on validation."""
    run = copy_run(search_run, tmp_path / "run")
    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", "3", "--patience", "off",
                                       "--classifier-epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "finetune.json").read_text())["settings"]["patience"] is None
    df = pd.read_csv(run / "finetune.csv", dtype={"error": str}).fillna({"error": ""})
    assert (df["status"] == "ok").all() and (df["epochs"] == 3).all()
    again = CliRunner().invoke(main, ["finetune", str(run), "--epochs", "3", "--classifier-epochs", "1"])
    assert again.exit_code == 2 and "patience: off -> 3); rerun with --patience off" in again.output, again.output


def test_several_runs_one_after_another_each_checked_first(search_run, finetuned, tmp_path):
    """`moncae finetune A B`: a wrong folder among them stops the command before any is trained;
    otherwise each is done in turn (here: both already fine-tuned, so both skip everything)."""
    fresh = copy_run(search_run, tmp_path / "fresh")
    result = CliRunner().invoke(main, ["finetune", str(fresh), str(tmp_path / "nope"), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 2 and "not a moncae run folder" in result.output, result.output
    assert not (fresh / "finetune.csv").exists()  # checked before the first was touched
    done = copy_run(finetuned[0], tmp_path / "done")  # its rows were made with other settings
    result = CliRunner().invoke(main, ["finetune", str(fresh), str(done), "--epochs", str(EPOCHS + 1),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 2 and "was made with other settings" in result.output, result.output
    assert not (fresh / "finetune.csv").exists()
    gone = copy_run(search_run, tmp_path / "gone")
    _missing_dataset(gone)  # its data file moved away: said before the first run is fine-tuned (an audit)
    result = CliRunner().invoke(main, ["finetune", str(fresh), str(gone), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 2 and "moved-away.npz" in result.output, result.output
    assert not (fresh / "finetune.csv").exists()

    a, b = copy_run(finetuned[0], tmp_path / "a"), copy_run(finetuned[0], tmp_path / "b")
    result = CliRunner().invoke(main, ["finetune", str(a), str(b), str(a), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("finetune ")] == [
        f"finetune {a} (1 of 2)", f"finetune {b} (2 of 2)"]
    assert result.output.count("0 fine-tuned now") == 2


def test_corrupt_model_is_failed_and_the_others_complete(finetuned, tmp_path):
    """Redo two of the models: one with a corrupt file fails, the other gives the same row."""
    run = copy_run(finetuned[0], tmp_path / "run")
    rows = pd.read_csv(run / "finetune.csv", dtype={"error": str}).fillna({"error": ""}).to_dict("records")
    assert len(rows) >= 2
    broken, redo = rows[0], rows[1]
    (run / "models" / model_filename(broken["genome_key"])).write_bytes(b"not a zip file")
    write_csv(run / "finetune.csv", FINETUNE_COLUMNS, rows[2:])

    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])

    assert result.exit_code == 0, result.output  # a failed model is a result, not an error
    assert f"2 fine-tuned now, {len(rows) - 2} skipped" in result.output
    assert "failed (ValueError" in result.output or "failed (BadZipFile" in result.output
    df = pd.read_csv(run / "finetune.csv", dtype={"error": str}).fillna({"error": ""}).set_index("genome_key")
    assert len(df) == len(rows)
    failed = df.loc[broken["genome_key"]]
    assert failed["status"] == "failed" and "zip" in failed["error"]
    again = df.loc[redo["genome_key"]]
    assert again["status"] == "ok"
    for column in ("rec_loss", "cl_loss", "cl_acc", "epochs"):  # reproducible on CPU
        assert again[column] == redo[column], column
    ft_index = pd.read_csv(run / "finetuned" / "index.csv", keep_default_na=False)
    assert (ft_index.loc[ft_index["genome_key"] == broken["genome_key"], "file"] == "").all()


def test_a_fine_tuned_model_whose_file_is_gone_is_fine_tuned_again(finetuned, tmp_path):
    """Deleted by hand: its row said ok with no file, a rerun skipped it, and `front` showed its test
    loss beside the searched model (a helper's audit)."""
    from moncae.export import load_front

    run = copy_run(finetuned[0], tmp_path / "run")
    rows = pd.read_csv(run / "finetune.csv").set_index("genome_key")
    key = rows.index[rows["status"] == "ok"][0]
    lost = run / "finetuned" / model_filename(key)
    lost.unlink()
    front = load_front(run, all_models=True).set_index("genome_key")
    assert front.loc[key, "rec_loss_split"] == "val" and front.loc[key, "finetuned_model"] == ""
    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", str(EPOCHS),
                                       "--classifier-epochs", str(CLASSIFIER_EPOCHS)])
    assert result.exit_code == 0, result.output
    assert "1 fine-tuned model(s) whose file in finetuned/ is gone are fine-tuned again" in result.output
    assert f"1 fine-tuned now, {len(rows) - 1} skipped" in result.output and lost.is_file()
    again = pd.read_csv(run / "finetune.csv").set_index("genome_key")
    assert list(again.index) == list(rows.index)  # in individual order still (a helper's audit)
    assert again.loc[key, "status"] == "ok" and len(again) == len(rows)
    for column in ("rec_loss", "cl_loss", "cl_acc", "epochs"):  # reproducible on CPU
        assert again.loc[key, column] == rows.loc[key, column], column


def test_a_run_whose_every_model_fails_exits_1(search_run, tmp_path):
    run = copy_run(search_run, tmp_path / "run")
    for path in (run / "models").glob("*.keras"):
        path.write_bytes(b"not a zip file")
    result = CliRunner().invoke(main, ["finetune", str(run), "--epochs", str(EPOCHS), "--classifier-epochs",
                                       str(CLASSIFIER_EPOCHS), "--quiet"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: no model of {run} was fine-tuned ok; each one's error is in the table above "
                      "and in its finetune.csv"], result.output
    assert "done: 0/" in result.output and "Traceback" not in result.output


def _numbers(run: Path) -> list[dict]:
    df = pd.read_csv(run / "finetune.csv", dtype={"error": str, "failure": str}, keep_default_na=False)
    return df.drop(columns=["finetune_seconds"]).to_dict("records")


def test_two_workers_fine_tune_as_one_worker_with_their_threads_does(search_run, tmp_path, monkeypatch):
    """Two models at once (worker processes, 1 TF thread each) give the rows and model files of
    one at a time with 1 thread: which worker runs a model, and when, changes nothing."""
    import keras

    from moncae.executors import LocalExecutor
    from moncae.executors.processes import ProcessExecutor
    from moncae.finetune.tasks import lost_finetune

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # the workers' threads, whatever the cores
    two, one = copy_run(search_run, tmp_path / "two"), copy_run(search_run, tmp_path / "one")
    finetune_run(two, epochs=1, classifier_epochs=2, workers=2)
    with ProcessExecutor(1, threads=1, on_lost=lost_finetune) as executor:
        finetune_run(one, epochs=1, classifier_epochs=2, executor=executor)
    assert _numbers(two) == _numbers(one)
    assert all(r["status"] == "ok" for r in _numbers(two))
    models = sorted((two / "finetuned").glob("*.keras"))
    assert len(models) == len(_numbers(two))
    for model in models:  # the same weights (the files hold a date)
        weights = [keras.saving.load_model(run / "finetuned" / model.name, compile=False).get_weights()
                   for run in (two, one)]
        assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    execution = json.loads((two / "finetune.json").read_text())["execution"]
    assert (execution["executor"], execution["workers"], execution["threads"]) == ("local", 2, 1)

    class OtherThreads(LocalExecutor):
        threads = 99

    rows = pd.read_csv(two / "finetune.csv", dtype={"error": str}).fillna({"error": ""}).to_dict("records")
    write_csv(two / "finetune.csv", FINETUNE_COLUMNS, rows[:-1])  # one model left to do

    class Messages(FinetuneProgress):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    messages = Messages()
    finetune_run(two, epochs=1, classifier_epochs=2, executor=OtherThreads(), progress=messages)
    assert messages.lines == [
        f"note: {two / 'finetune.csv'} started with 1 TensorFlow thread(s) per training, this fine-tune "
        "trains with 99 (1 worker(s)): new trainings may differ in the numbers from an uninterrupted "
        "run (use the first run's --workers 2 to avoid it)"]
    recorded = json.loads((two / "finetune.json").read_text())
    assert recorded["execution"]["threads"] == 1 and [e["threads"] for e in recorded["later_executions"]] == [99]


def test_a_fine_tune_whose_worker_keeps_dying_is_failed_and_tried_again_later(search_run, tmp_path):
    from moncae.finetune.tasks import FinetuneTask, lost_finetune

    model = finetune.final_models(RunFolder(search_run), (28, 28, 1))[0]
    out = lost_finetune(FinetuneTask(model, None, None, (28, 28, 1)), "its worker died")
    record = out.record
    assert out.model_bytes is None and out.test_losses is None and record.genome_key == model.genome_key
    assert (record.status, record.failure, record.error) == ("failed", "lost", "its worker died")
    assert record.transient and record.bottleneck in record.architecture


def test_streamed_codes_give_the_same_classifier(finetuned):
    """Codes too big for memory are re-encoded per batch: same classifier, same scores."""
    import keras

    from moncae.data import cached_dataset
    from moncae.model.decode import build_autoencoder
    from moncae.model.latent import latent_classification
    from moncae.store import RunFolder

    run, _ = finetuned
    config = finetune.read_run_config(RunFolder(run))
    data = cached_dataset(config.data_spec())
    model = finetune.final_models(RunFolder(run), data.input_shape)[0]
    scores = []
    for budget in (1 << 30, 0):
        keras.backend.clear_session()
        autoencoder, encoder = build_autoencoder(model.genome, data.input_shape)
        autoencoder.load_weights(run / "finetuned" / model_filename(model.genome_key))
        scores.append(latent_classification(
            encoder, data.x_train, data.y_train, data.x_test, data.y_test,
            num_classes=data.num_classes, epochs=2, seed=1, memory_budget=budget))
    assert [s.streamed for s in scores] == [False, True]
    assert scores[1].accuracy == pytest.approx(scores[0].accuracy, abs=1e-6)
    assert scores[1].loss == pytest.approx(scores[0].loss, rel=1e-4)


# --------------------------------------------------------------------------- bad input


def _unfinished(run: Path) -> None:
    path = run / "checkpoint.json"
    state = json.loads(path.read_text())
    state["finished"] = False
    path.write_text(json.dumps(state))


def _missing_dataset(run: Path) -> None:
    path = run / "config.json"
    payload = json.loads(path.read_text())
    payload["run"]["dataset"] = str(run.parent / "moved-away.npz")
    path.write_text(json.dumps(payload))


def _rows_without_settings(run: Path, settings: str | None = None) -> None:
    """A fine-tune's row whose finetune.json was deleted (a helper's audit: a rerun mixed settings)
    or is nested too deep to read."""
    from moncae.finetune.records import FINETUNE_COLUMNS

    row = {c: "" for c in FINETUNE_COLUMNS} | {"individual": 0, "genome_key": "x", "status": "ok", "epochs": 1}
    pd.DataFrame([row], columns=FINETUNE_COLUMNS).to_csv(run / "finetune.csv", index=False)
    if settings is not None:
        (run / "finetune.json").write_text(settings)


def _other_settings(run: Path) -> None:
    (run / "finetune.json").write_text(json.dumps({"settings": {"epochs": 7, "classifier_epochs": 20,
                                                                "batch_size": 256, "patience": 3}}))
    write_csv(run / "finetune.csv", FINETUNE_COLUMNS, [
        {"individual": 0, "genome_key": "x", "status": "ok", "epochs": 7}])


@pytest.mark.parametrize("make_bad, args, expected", [
    (lambda run: run / "nope", [], "not a moncae run folder"),
    (lambda run: (run / "config.json"), [], "not a moncae run folder"),
    (lambda run: (run / "config.json").unlink() or run, [], "not a moncae run folder"),
    (lambda run: _unfinished(run) or run, [], "finish the search first with `moncae search --dataset"),
    (lambda run: _unfinished(run) or run, [], "--preset smoke --generations 2 --resume`"),
    (lambda run: (run / "models" / "index.csv").unlink() or run, [], "no final population"),
    (lambda run: (run / "checkpoint.json").unlink() or run, [], "no final population"),
    (lambda run: (run / "checkpoint.json").write_bytes(b"junk") and run, [], "damaged"),
    (lambda run: _missing_dataset(run) or run, [], "moved-away.npz"),
    (lambda run: _other_settings(run) or run, [], "other settings"),
    (lambda run: (run / "finetune.csv").write_text("a,b\n1,2\n") and run, [], "to fine-tune again"),
    (lambda run: run, ["--epochs", "-1"], "epochs"),
    (lambda run: run, ["--classifier-epochs", "0"], "classifier-epochs"),
    (lambda run: _rows_without_settings(run) or run, [], "has rows but finetune.json is gone"),
    (lambda run: _rows_without_settings(run, "[" * 100_000) or run, [], "finetune.json is damaged"),  # too deep
    (lambda run: _rows_without_settings(run, "garbage{") or run, [], "finetune.json is damaged"),
    (lambda run: _rows_without_settings(run, '{"settings": [1, 2]}') or run, [], "finetune.json is damaged"),
    (lambda run: _other_settings(run) or run, [], "rerun with --epochs 7, or delete"),
    (lambda run: [p.unlink() for p in (run / "models").glob("*.keras")] and run, [],
     "is missing; restore the run's models/ folder from a copy of the run"),
])
def test_bad_input_exits_2_with_one_line(search_run, tmp_path, make_bad, args, expected):
    run = copy_run(search_run, tmp_path / "run")
    target = make_bad(run)
    before = sorted(p.name for p in run.iterdir() if p.name != ".lock")
    result = CliRunner().invoke(main, ["finetune", str(target), *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) <= 3  # click usage errors add 2 lines
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == before  # nothing written


def test_unlabeled_images_search_finetune_and_report(tmp_path):
    """A .npz of images alone (no y_train, y_test): the search, the fine-tune (no classifier:
    NaN classification columns, the model still fine-tuned and measured) and the report run."""
    from moncae.config import resolve_config
    from moncae.report import build_report
    from moncae.search.loop import run_search

    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x_train=rng.integers(0, 256, (96, 12, 12), dtype=np.uint8),
             x_test=rng.integers(0, 256, (32, 12, 12), dtype=np.uint8))
    config = resolve_config(preset="smoke", dataset=str(path), seed=1, out=str(tmp_path / "out"),
                            population=2, generations=1, train_size=64, val_size=32,
                            test_size=32)
    result = run_search(config)
    ft = finetune_run(result.run_dir, epochs=1, classifier_epochs=2)
    rows = pd.read_csv(result.run_dir / "finetune.csv")
    assert len(rows) == len(ft.records) >= 1 and (rows["status"] == "ok").all()
    assert rows["rec_loss"].between(0, 1).all()
    assert rows["cl_acc"].isna().all() and rows["cl_loss"].isna().all()
    md = build_report(tmp_path / "out", out=tmp_path / "report").read_text()
    assert "## images" in md
