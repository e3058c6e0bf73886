"""`moncae front` / `moncae export` / `load_model` on a real smoke run (mnist_5k, tiny models):
the files written reload and compose exactly, carry the run's weights, and errors are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SMOKE_SEED

import moncae
from moncae.cli.main import main
from moncae.data import cached_dataset
from moncae.errors import MoncaeError, RunFolderWarning
from moncae.export import load_front, read_run_models
from moncae.export.export import TFLITE_TOLERANCE
from moncae.finetune import finetune_run
from moncae.method.architecture import bottleneck_shape
from moncae.method.genome import Genome
from moncae.store import RunLock

pytestmark = pytest.mark.slow  # trains real models

SEED = SMOKE_SEED


@pytest.fixture(scope="module")
def search_run(smoke_run) -> Path:
    """A finished smoke search (never modified: tests work on copies)."""
    return smoke_run.run_dir


@pytest.fixture(scope="module")
def data(search_run):
    return cached_dataset(moncae.SearchConfig.from_dict(
        json.loads((search_run / "config.json").read_text())["run"]).data_spec())


@pytest.fixture(scope="module")
def front(search_run) -> pd.DataFrame:
    return load_front(search_run, all_models=True)


def kept_front(front: pd.DataFrame) -> pd.DataFrame:
    kept = front[front["on_front"] & (front["searched_model"] != "")]
    assert len(kept), "the smoke run kept no front model (elitism keeps at least one)"
    return kept


@pytest.fixture(scope="module")
def exported(search_run, front, tmp_path_factory):
    """`moncae export --max-loc X` (X: the largest LOC of a kept front point) in every format."""
    max_loc = round(kept_front(front)["loc"].max(), 3)
    out = tmp_path_factory.mktemp("export") / "model"
    result = CliRunner().invoke(main, ["export", str(search_run), str(out), "--max-loc", str(max_loc),
                                       "--format", "savedmodel", "--format", "tflite"])
    assert result.exit_code == 0, result.output
    return out, result.output, max_loc


def one_line_error(args, expected):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    return lines[0]


def bce(model, x) -> float:
    """The search's loss on `x`, computed the way the search computed it."""
    from moncae.model.training import evaluate_loss, make_loss

    model.compile(loss=make_loss("bce"))
    return evaluate_loss(model, x, 64)


# --------------------------------------------------------------------------- front


def test_front_of_a_real_run_matches_its_csvs_and_keras(search_run, front):
    """FLOPs and parameters of every listed model against the Keras model the genome builds."""
    import keras

    from moncae.export.front import read_run_models
    from moncae.model.decode import build_autoencoder

    result = CliRunner().invoke(main, ["front", str(search_run), "--all"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == len(front) + 2
    csv = pd.read_csv(search_run / "pareto_front.csv")
    assert sorted(front.loc[front["on_front"], "genome_key"]) == sorted(csv["genome_key"])
    run = read_run_models(search_run, all_models=True)
    assert run.input_shape == (28, 28, 1)
    final = set(pd.read_csv(search_run / "models" / "index.csv")["genome_key"])
    for row in front.to_dict("records"):
        assert (row["searched_model"] != "") == (row["genome_key"] in final)
        autoencoder, _ = build_autoencoder(run.genomes[row["genome_key"]], (28, 28, 1))
        assert autoencoder.count_params() == row["params"]
        flops = 0
        for layer in autoencoder.layers:
            if isinstance(layer, keras.layers.Conv2D):
                _, h, w, c_out = layer.output.shape
                kh, kw = layer.kernel_size
                flops += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
        assert row["flops"] == flops
        keras.backend.clear_session()


# --------------------------------------------------------------------------- export


def test_export_writes_every_file_and_a_complete_model_json(search_run, front, exported, data):
    out, output, max_loc = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "autoencoder.keras", "encoder.keras", "decoder.keras", "model.json", "encoder_savedmodel",
        "decoder_savedmodel", "encoder.tflite", "decoder.tflite"])
    expected = kept_front(front)
    expected = expected[expected["loc"].round(3) <= max_loc].sort_values("search_rec_loss").iloc[0]
    meta = json.loads((out / "model.json").read_text())
    assert meta["genome_key"] == expected["genome_key"] and meta["id"] == expected["id"]
    assert f"chose {expected['id'][:8]} by --max-loc" in output and output.rstrip().endswith(str(out))
    genome = Genome.from_config(meta["genome"])
    assert genome.key_for((28, 28, 1)) == expected["genome_key"]
    assert meta["input_shape"] == [28, 28, 1]
    assert meta["bottleneck_shape"] == list(bottleneck_shape(genome, (28, 28, 1)))
    assert meta["dataset"]["name"] == "mnist_5k" and meta["dataset"]["fingerprint"] == data.fingerprint
    assert meta["weights"] == "searched" and meta["metrics"]["finetune"] is None
    assert meta["metrics"]["search"] == {**meta["metrics"]["search"], "split": "val",
                                         "rec_loss": pytest.approx(expected["search_rec_loss"])}
    assert meta["settings"] == json.loads((search_run / "config.json").read_text())["run"]
    assert {"tensorflow", "keras", "moncae"} <= set(meta["versions"]["export"])
    assert meta["flops"] == expected["flops"] and meta["params"] == expected["params"]
    checks = meta["checks"]["max_abs_diff"]
    assert checks["keras"] == checks["autoencoder.keras"] == checks["savedmodel"] == 0.0
    assert checks["tflite"] <= TFLITE_TOLERANCE


def test_exported_files_reload_compose_and_hold_the_searched_weights(exported, front, data):
    import keras
    import tensorflow as tf

    out, _, _ = exported
    meta = json.loads((out / "model.json").read_text())
    auto, enc, dec = (keras.saving.load_model(out / f"{n}.keras") for n in ("autoencoder", "encoder", "decoder"))
    x = data.x_test[:16]
    reference = auto(x).numpy()
    codes = enc(x).numpy()
    assert codes.shape == (16, *meta["bottleneck_shape"]) and dec.input_shape[1:] == codes.shape[1:]
    assert np.abs(dec(codes).numpy() - reference).max() == 0.0
    # the exported weights are the run's: the search's validation loss, recomputed
    assert bce(auto, data.x_val) == pytest.approx(meta["metrics"]["search"]["rec_loss"], abs=1e-5)
    saved_enc = tf.saved_model.load(str(out / "encoder_savedmodel"))
    saved_dec = tf.saved_model.load(str(out / "decoder_savedmodel"))
    assert np.abs(saved_dec.serve(saved_enc.serve(x)).numpy() - reference).max() == 0.0
    from moncae.export.export import _run_tflite

    lite = _run_tflite(out / "decoder.tflite", _run_tflite(out / "encoder.tflite", x))
    assert np.abs(lite - reference).max() <= TFLITE_TOLERANCE


def test_load_model_gives_each_part(search_run, front, data):
    row = kept_front(front).iloc[0]
    x = data.x_test[:4]
    auto = moncae.load_model(search_run, row["id"][:8])
    enc = moncae.load_model(search_run, row["genome_key"], part="encoder")
    dec = moncae.load_model(search_run, row["id"], part="decoder")
    assert np.abs(dec(enc(x)).numpy() - auto(x).numpy()).max() == 0.0
    assert "x".join(str(d) for d in enc.output.shape[1:]) == row["bottleneck"]
    with pytest.raises(MoncaeError, match="`part` must be one of"):
        moncae.load_model(search_run, row["id"], part="classifier")


def test_nothing_satisfies_names_the_closest_model(search_run, front, tmp_path, monkeypatch):
    closest = kept_front(front).sort_values("loc").iloc[0]
    one_line_error(["export", str(search_run), str(tmp_path / "o"), "--max-loc", "0.1"],
                   f"the closest kept model is {closest['id'][:8]} (LOC {closest['loc']:.3f}, "
                   f"val loss {closest['search_rec_loss']:.4f}): try --max-loc {closest['loc']:.3f}")
    one_line_error(["export", str(search_run), str(tmp_path / "o"), "--key", "not-a-key"],
                   "no model with key 'not-a-key'")
    for bad in ("nan", "-5", "inf"):
        one_line_error(["export", str(search_run), str(tmp_path / "o"), "--max-loc", bad],
                       "--max-loc must be a number >= 0")
    one_line_error(["export", str(search_run), str(tmp_path / "o"), "--max-loss", "nan"],
                   "--max-loss must be a number >= 0")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for out, expected in ((blocker / "o", f"output path {blocker} is a file, not a folder; pass another OUT_DIR"),
                          (tmp_path / "link", "is a link; export into a new or empty folder"),
                          (search_run / "exp", f"is inside the run folder {search_run}")):
        one_line_error(["export", str(search_run), str(out), "--knee"], expected)  # before any work (an audit)
    monkeypatch.chdir(tmp_path / "empty")  # `.` empty: it was exported into, then its rmdir failed (an audit)
    for here in (".", "../empty", str(tmp_path)):
        one_line_error(["export", str(search_run), here, "--knee"], "is the folder you are in (or holds it)")
    assert list((tmp_path / "empty").iterdir()) == []
    unkept = front[front["on_front"] & (front["searched_model"] == "")]
    if len(unkept):
        one_line_error(["export", str(search_run), str(tmp_path / "o"), "--key", unkept.iloc[0]["id"]],
                       "not in the final population")
    assert not (tmp_path / "o").exists()


def test_an_out_filled_by_another_export_meanwhile_is_one_line_and_left_as_it_is(search_run, tmp_path,
                                                                                  monkeypatch):
    """Two exports into one OUT: the second exited 1 with the disk-full advice (a helper's audit)."""
    import moncae.export.export as export

    out, real = tmp_path / "o", export._check

    def other_export_finishes_first(*args, **kwargs):
        out.mkdir()
        (out / "model.json").write_text("the other export's")
        return real(*args, **kwargs)

    monkeypatch.setattr(export, "_check", other_export_finishes_first)
    result = CliRunner().invoke(main, ["export", str(search_run), str(out), "--knee"])
    assert result.exit_code == 2, result.output
    assert f"{out} was filled by another command meanwhile" in result.output and "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no hidden folder of this export left
    assert (out / "model.json").read_text() == "the other export's"


def test_an_export_removes_what_a_killed_export_left_beside_it(search_run, tmp_path):
    """An export killed by SIGKILL left its hidden `.OUT.xxxx/` folder for good (a helper's audit)."""
    import subprocess
    import sys

    from moncae.store.staging import _host

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    killed = tmp_path / f".a.partial-export-{process.pid}-{_host()}-x1"  # its process has ended
    elsewhere = tmp_path / f".b.partial-export-{process.pid}-another.host-x1"  # maybe running there
    for folder in (killed, elsewhere):
        folder.mkdir()
        (folder / "encoder.keras").write_text("part")
    result = CliRunner().invoke(main, ["export", str(search_run), str(tmp_path / "o"), "--knee"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [elsewhere.name, "o"]


def test_corrupt_or_missing_model_file_is_one_line_and_writes_nothing(search_run, front, tmp_path):
    run = Path(shutil.copytree(search_run, tmp_path / "run"))
    row = kept_front(front).iloc[0]
    model = run / "models" / Path(row["searched_model"]).name
    model.write_bytes(b"PK\x03\x04 truncated")
    line = one_line_error(["export", str(run), str(tmp_path / "o"), "--key", row["id"][:8]],
                          "cannot be loaded into its genome's network")
    assert str(model) in line
    model.unlink()
    one_line_error(["export", str(run), str(tmp_path / "o"), "--key", row["id"][:8]],
                   "its model file is missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no OUT_DIR, no temp folder


# --------------------------------------------------------------------------- after a fine-tune


@pytest.fixture(scope="module")
def finetuned_run(search_run, tmp_path_factory) -> Path:
    run = Path(shutil.copytree(search_run, tmp_path_factory.mktemp("ft") / "run"))
    finetune_run(run, epochs=1, classifier_epochs=1)
    return run


def test_fine_tuned_weights_are_exported_by_default(finetuned_run, data, tmp_path):
    import keras

    front = load_front(finetuned_run, all_models=True)
    ft = pd.read_csv(finetuned_run / "finetune.csv").set_index("genome_key")
    tuned = front[front["finetuned_model"] != ""]
    assert len(tuned) == (ft["status"] == "ok").sum() and (tuned["rec_loss_split"] == "test").all()
    row = tuned.iloc[0]
    assert row["rec_loss"] == pytest.approx(ft.loc[row["genome_key"], "rec_loss"])

    with RunLock(finetuned_run, "moncae finetune"):  # a fine-tune running: said (a helper's audit)
        with pytest.warns(RunFolderWarning, match="its fine-tune is running"):
            load_front(finetuned_run)
    for flag, weights in (([], "finetuned"), (["--searched"], "searched")):
        out = tmp_path / weights
        result = CliRunner().invoke(main, ["export", str(finetuned_run), str(out), "--key", row["id"][:8],
                                           *flag])
        assert result.exit_code == 0, result.output
        meta = json.loads((out / "model.json").read_text())
        assert meta["weights"] == weights and f"{weights} weights" in result.output
        auto = keras.saving.load_model(out / "autoencoder.keras")
        if weights == "finetuned":  # the fine-tune's test loss, recomputed from the exported file
            assert meta["metrics"]["finetune"]["split"] == "test"
            assert bce(auto, data.x_test) == pytest.approx(ft.loc[row["genome_key"], "rec_loss"], abs=1e-5)
        else:
            assert meta["metrics"]["finetune"] is None
            assert bce(auto, data.x_val) == pytest.approx(row["search_rec_loss"], abs=1e-5)


def test_decoder_with_cropping_splits_exactly_and_converts_to_tflite(tmp_path):
    """28 -> 14 -> 7 -> 4: the decoder upsamples 4 -> 8 and crops back to 7 (untrained weights)."""
    import tensorflow as tf

    from moncae.export.export import _run_tflite, _tflite_bytes
    from moncae.export.models import build_parts
    from moncae.method.genome import GenomeSpace
    from moncae.model.decode import build_autoencoder

    space = GenomeSpace(max_blocks=3, max_filters=8)
    genome = Genome((1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 2, 0, 3, 0, 1, 0, 2), space)
    assert bottleneck_shape(genome, (28, 28, 1)) == (4, 4, 4)
    autoencoder, _ = build_autoencoder(genome, (28, 28, 1), seed=1)
    autoencoder.save(tmp_path / "model.keras")
    parts = build_parts(tmp_path / "model.keras", genome, (28, 28, 1))
    assert "dec2_crop" in [layer.name for layer in parts["decoder"].layers]
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    reference = parts["autoencoder"](x).numpy()
    assert np.abs(autoencoder(x).numpy() - reference).max() == 0.0
    assert np.abs(parts["decoder"](parts["encoder"](x)).numpy() - reference).max() == 0.0
    for name in ("encoder", "decoder"):
        (tmp_path / f"{name}.tflite").write_bytes(_tflite_bytes(parts[name], tf))
    lite = _run_tflite(tmp_path / "decoder.tflite", _run_tflite(tmp_path / "encoder.tflite", x))
    assert np.abs(lite - reference).max() <= TFLITE_TOLERANCE


def test_train_ga_takes_a_genome_of_a_run_by_key(search_run, front):
    row = kept_front(front).iloc[0]
    done = CliRunner().invoke(main, ["train-ga", "--run", str(search_run), "--key", row["id"][:10],
                                     "--images", "4", "--generations", "3", "--log-every", "3"])
    assert done.exit_code == 0, done.output
    models = read_run_models(search_run, all_models=True)
    genome = models.genomes[row["genome_key"]]
    assert done.output.startswith(f"{genome.describe(models.input_shape)}: GA on 4 images")
    assert "done: 3 generations" in done.output
    spaced = CliRunner().invoke(main, ["train-ga", "--run", str(search_run), "--key", row["id"][:10], "--images",
                                       "4", "--generations", "1", "--space", "dense", "--max-blocks", "5"])
    assert spaced.exit_code == 0 and spaced.output.startswith(  # the run's genome still (a helper's audit)
        "Warning: --space/--max-blocks have no effect with --run: the genome is decoded in its run's space; they "
        f"act with --genes\n{genome.describe(models.input_shape)}: GA on 4 images"), spaced.output
    one_line_error(["train-ga", "--run", str(search_run), "--key", row["id"][:10], "--genes", "0,1"],
                   "either as --genes")
    one_line_error(["train-ga", "--run", str(search_run), "--key", "zz"], "no model with key")
