"""`export_model`: one model of a finished run, written ready to use and checked.

OUT_DIR gets `autoencoder.keras`, `encoder.keras` (image -> bottleneck code), `decoder.keras`
(code -> reconstruction) and `model.json` (genome, architecture, dataset and fingerprint, shapes,
metrics and their split, the run's settings, package versions, the checks below); optionally the
encoder and decoder as TF SavedModels (`encoder_savedmodel/`, `decoder_savedmodel/`, any batch
size) and TFLite files (`encoder.tflite`, `decoder.tflite`, one image per call: Keras'
UpSampling2D with a free batch size needs TF Select ops, which the plain TFLite runtime lacks).

Everything is written to a temporary folder beside OUT_DIR, reloaded and checked there (encoder
then decoder must reproduce the autoencoder's output on test images), and only then renamed to
OUT_DIR: a failed export leaves nothing behind, and the temporary folder of an export killed
outright (SIGKILL) is removed by the next export beside it (`moncae.store.staging`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from moncae.data import cached_dataset
from moncae.errors import MoncaeError, one_line
from moncae.export.front import read_run_models
from moncae.export.select import Choice, choose
from moncae.method.architecture import bottleneck_shape, describe_with_bottleneck, forward_flops
from moncae.search.loop import package_versions
from moncae.store import RunFolder, check_writable_folder, write_json
from moncae.store.staging import remove_leftovers, staging_folder

__all__ = ["FORMATS", "ExportResult", "export_model"]

FORMATS = ("savedmodel", "tflite")
CHECK_IMAGES = 8
KERAS_TOLERANCE = 1e-5  # reloaded .keras / SavedModel: the same kernels, expect exactly 0
TFLITE_TOLERANCE = 1e-4  # TFLite's own kernels (XNNPACK) sum in another order
STAGING_MARKER = ".partial-export-"  # .OUT.partial-export-PID-HOST-XXXX beside OUT while it is written


@dataclass
class ExportResult:
    out_dir: Path
    choice: Choice
    files: list[str]  # written, relative to out_dir
    checks: dict[str, float]  # format -> max abs difference from the autoencoder's output
    notes: list[str] = field(default_factory=list)


def export_model(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, key: str | None = None,
                 max_loc: float | None = None, max_loss: float | None = None, knee: bool = False,
                 searched: bool = False, formats: str | tuple[str, ...] = (),
                 data_dir: str | os.PathLike | None = None,
                 check_images: int = CHECK_IMAGES) -> ExportResult:
    """Choose one model of a finished run (exactly one of `key`, `max_loc`, `max_loss`, `knee`:
    see `moncae.export.select.choose`), write it to the new or empty folder `out_dir`, check it.

    Args:
        searched: use the searched weights even when the run was fine-tuned (fine-tuned ones are
            taken when they exist).
        formats: also write 'savedmodel' and/or 'tflite' versions of the encoder and decoder
            (one name or several).
        data_dir: where to find the run's dataset if not where the search found it (test images
            for the checks and the dataset's fingerprint).
        check_images: how many test images the reload checks run.

    Raises:
        MoncaeError (one line): the run did not finish, no model satisfies the rule (the message
            names the closest one), the model was not kept or its file is missing or corrupt,
            `out_dir` is not empty, or a check fails.
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    if isinstance(check_images, bool) or not isinstance(check_images, int) or check_images < 1:
        raise MoncaeError(f"`check_images` must be an integer >= 1 (test images the reload checks run). "
                          f"Received: check_images={check_images!r}")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise MoncaeError(f"unknown export format(s) {', '.join(unknown)}; choose from "
                          f"{', '.join(FORMATS)} (.keras files are always written)")
    run = read_run_models(run_dir, all_models=True)
    choice = choose(run.frame, key=key, max_loc=max_loc, max_loss=max_loss, knee=knee,
                    searched=searched)
    out = Path(out_dir)
    if Path(os.path.abspath(out)) in (Path.cwd(), *Path.cwd().parents):  # `.`: replaced at the end
        raise MoncaeError(f"{out_dir} is the folder you are in (or holds it); export into a new or empty "
                          "folder, e.g. export/knee")
    out = Path(os.path.abspath(out)) if out.name in ("", ".", "..") else out
    if Path(os.path.abspath(out)).is_relative_to(os.path.abspath(run_dir)):  # its commands clean it
        raise MoncaeError(f"{out_dir} is inside the run folder {run_dir}; export to a folder outside it")
    if out.is_symlink():  # replaced by the export's own folder at the end: refused before any work
        raise MoncaeError(f"{out} is a link; export into a new or empty folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "is a file" if not out.is_dir() else "is not empty"
        raise MoncaeError(f"{out} {what}; export into a new or empty folder")
    check_writable_folder(out.parent, "OUT_DIR")  # a file on the way, a read-only place
    config = run.config
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
    data = cached_dataset(config.data_spec())  # DataError (one line) if it is not here
    RunFolder(run_dir).check_data(data)  # the data the run was searched on, or a one-line error
    genome = run.genomes[choice.row["genome_key"]]
    shape = data.input_shape
    if run.input_shape is not None and tuple(run.input_shape) != tuple(shape):
        raise MoncaeError(f"the run's models take {run.input_shape} images but its dataset loads as "
                          f"{shape} here; pass the run's data with --data-dir")

    from moncae.export.models import build_parts  # loads TensorFlow

    parts = build_parts(choice.file, genome, shape, config.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, STAGING_MARKER)  # of exports killed by SIGKILL
    tmp = staging_folder(out.parent, STAGING_MARKER, name=f".{out.name}")
    try:
        files = _write(parts, tmp, formats)
        x = data.x_test[:check_images]
        checks = _check(parts, tmp, formats, x)
        payload = _model_json(run, choice, genome, shape, data, checks, len(x), files)
        write_json(tmp / "model.json", payload)
        files.append("model.json")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it private
        try:
            if out.exists():
                out.rmdir()  # empty, checked above
            tmp.rename(out)
        except OSError as err:  # filled meanwhile (another export into it): nothing of it is touched
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise MoncaeError(f"{out} was filled by another command meanwhile (another export?); nothing of "
                              "this export was kept: export into a new or empty folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, choice, files, checks, list(choice.notes))


# --------------------------------------------------------------------------- writing


def _write(parts: dict, folder: Path, formats) -> list[str]:
    import tensorflow as tf

    files = []
    for name in ("autoencoder", "encoder", "decoder"):
        parts[name].save(folder / f"{name}.keras")
        files.append(f"{name}.keras")
    for name in ("encoder", "decoder"):
        model = parts[name]
        if "savedmodel" in formats:
            model.export(folder / f"{name}_savedmodel", format="tf_saved_model", verbose=False)
            files.append(f"{name}_savedmodel/")
        if "tflite" in formats:
            (folder / f"{name}.tflite").write_bytes(_tflite_bytes(model, tf))
            files.append(f"{name}.tflite")
    return files


def _tflite_bytes(model, tf) -> bytes:
    """A TFLite flatbuffer of `model` for one image per call, built-in ops only."""
    signature = [tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name=model.input.name)]
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as err:  # noqa: BLE001 - the converter raises many kinds
            raise MoncaeError(f"TFLite conversion of the {model.name} failed "
                              f"({one_line(err, limit=200)})") from None


# --------------------------------------------------------------------------- checking


def _check(parts: dict, folder: Path, formats, x: np.ndarray) -> dict[str, float]:
    """Reload what was written; max abs difference of encoder -> decoder from the autoencoder."""
    import keras

    reference = np.asarray(parts["autoencoder"](x, training=False))
    checks = {}
    loaded = {}
    for name in ("autoencoder", "encoder", "decoder"):
        try:
            loaded[name] = keras.saving.load_model(folder / f"{name}.keras", compile=False)
        except Exception as err:  # noqa: BLE001
            raise MoncaeError(f"the written {name}.keras does not load back ({one_line(err)})") from None
    checks["keras"] = _diff(loaded["decoder"](loaded["encoder"](x, training=False), training=False),
                            reference)
    checks["autoencoder.keras"] = _diff(loaded["autoencoder"](x, training=False), reference)
    if "savedmodel" in formats:
        import tensorflow as tf

        enc = tf.saved_model.load(str(folder / "encoder_savedmodel"))
        dec = tf.saved_model.load(str(folder / "decoder_savedmodel"))
        checks["savedmodel"] = _diff(dec.serve(enc.serve(x)), reference)
    if "tflite" in formats:
        codes = _run_tflite(folder / "encoder.tflite", x)
        checks["tflite"] = _diff(_run_tflite(folder / "decoder.tflite", codes), reference)
    for name, value in checks.items():
        tolerance = TFLITE_TOLERANCE if name == "tflite" else KERAS_TOLERANCE
        if not (math.isfinite(value) and value <= tolerance):
            what = "reloaded autoencoder's" if name == "autoencoder.keras" else \
                f"{name} encoder -> decoder"
            raise MoncaeError(f"check failed: the {what} output differs from the autoencoder's by "
                              f"{value:.3g} (tolerance {tolerance:g}); nothing written")
    return checks


def _diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """Run a TFLite file image by image."""
    import tensorflow as tf

    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
        interpreter = tf.lite.Interpreter(model_path=str(path))
        interpreter.allocate_tensors()  # the runtime logs its CPU delegate to fd 2 here
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        outputs = []
        for image in x:
            interpreter.set_tensor(inp["index"], image[None].astype(np.float32))
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(outputs)


@contextlib.contextmanager
def _quiet_stderr():
    """Park file descriptor 2 (C++ runtime chatter); MONCAE_TF_VERBOSE=1 keeps it."""
    try:
        sys.stderr.flush()
        saved = None if os.environ.get("MONCAE_TF_VERBOSE") else os.dup(2)
    except (OSError, ValueError):  # no real fd 2
        saved = None
    if saved is None:
        yield
        return
    with open(os.devnull, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# --------------------------------------------------------------------------- model.json


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _model_json(run, choice: Choice, genome, shape, data, checks, n_checked, files) -> dict[str, Any]:
    row = choice.row
    config = run.config
    finetune = None
    if choice.weights == "finetuned":
        finetune = {"rec_loss": _num(row["rec_loss"]), "split": "test", "cl_acc": _num(row["cl_acc"]),
                    **({"kl": _num(row["kl"])} if config.model == "vae" else {}), "source": "finetune.csv"}
    return {
        "format": "moncae-export-1",
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run.path.resolve()),
        "id": row["id"],
        "genome_key": row["genome_key"],
        "genome": genome.to_config(),
        "architecture": describe_with_bottleneck(genome, shape),
        "selection": {"rule": choice.rule, "notes": list(choice.notes), "on_front": bool(row["on_front"])},
        "weights": choice.weights,
        "source_file": str(Path(choice.file).resolve()),
        "dataset": {"name": config.dataset, "fingerprint": data.fingerprint, "source": data.source,
                    **data.sizes,
                    "split_seed": config.split_seed},
        "input_shape": list(shape),
        "bottleneck_shape": list(bottleneck_shape(genome, shape)),
        "loc": _num(row["loc"]),
        "params": int(row["params"]),
        "flops": forward_flops(genome, shape, config.model),
        "flops_counted": "2 x multiply-adds of every Conv2D and Dense layer, one image "
                         "(moncae.method.architecture.forward_flops)",
        "metrics": {
            # what rec_loss measures: a VAE's is the BCE of its mean decoding, whatever it trained with
            "loss": "bce" if config.model == "vae" else config.loss,
            **({"vae_training_loss": config.loss} if config.model == "vae" else {}),
            "search": {"rec_loss": _num(row["search_rec_loss"]),
                       **({"kl": _num(row["search_kl"])} if config.model == "vae" else {}), "split": "val",
                       "weights": "searched", "source": "pareto_front.csv / evaluations.csv"},
            "finetune": finetune,
        },
        "checks": {"images": n_checked, "split": "test",
                   "max_abs_diff": {k: v for k, v in checks.items()},
                   "tolerance": {k: TFLITE_TOLERANCE if k == "tflite" else KERAS_TOLERANCE
                                 for k in checks}},
        "files": files,
        "settings": run.payload.get("run", {}),
        "preset": run.payload.get("preset"),
        "versions": {"run": run.payload.get("versions", {}), "export": package_versions()},
    }

