"""Train one genome and measure it: the only place the search touches Keras.

Every evaluation is seeded from (run seed, genome key), so a genome gives the same result
whatever order, process or machine it runs in; that is what makes the cache, `--resume` and
distributed executors give identical runs.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moncae.data import Dataset, load_dataset
from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()  # before decode imports keras
from moncae.decode import (
    bottleneck_shape,
    build_autoencoder,
    describe_with_bottleneck,
    loc_of_shape,
)
from moncae.genome import Genome

EVAL_COLUMNS = [
    "generation", "genome_key", "architecture", "rec_loss", "loc", "bottleneck", "params",
    "epochs", "fit_seconds", "seconds", "status", "error",
]
TIMING_COLUMNS = ("fit_seconds", "seconds")


@dataclass(frozen=True)
class DataSpec:
    """How a worker loads the data itself (arrays are never shipped with a task)."""

    name: str
    data_dir: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    split_seed: int = 0


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 5
    batch_size: int = 256
    loss: str = "bce"
    patience: int = 1


@dataclass(frozen=True)
class EvalTask:
    genome: Genome
    data: DataSpec
    train: TrainSettings
    seed: int
    ref_point: tuple[float, float] = (4.0, 12.0)
    keep_model: bool = True
    key: str = ""  # the genome's canonical key for this input shape (set by the search)


@dataclass
class EvalRecord:
    """One training of one genome: a row of `evaluations.csv` (generation is set by the search)."""

    genome_key: str
    architecture: str
    rec_loss: float
    loc: float
    bottleneck: str
    params: int
    epochs: int
    fit_seconds: float
    seconds: float
    status: str
    error: str = ""
    generation: int = -1

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class EvalResult:
    record: EvalRecord
    model_bytes: bytes | None = field(default=None, repr=False)


def evaluation_seed(run_seed: int, genome_key: str) -> int:
    """A 31-bit seed from (run seed, genome key), the same in every process."""
    digest = hashlib.sha256(f"{run_seed}:{genome_key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@functools.lru_cache(maxsize=2)
def cached_dataset(spec: DataSpec) -> Dataset:
    """Each process (driver or worker) loads a dataset once and reuses it for every task."""
    return load_dataset(
        spec.name, data_dir=spec.data_dir, train_size=spec.train_size, val_size=spec.val_size,
        test_size=spec.test_size, seed=spec.split_seed,
    )


def quiet_tensorflow() -> None:
    """Silence TF's Python-side warnings (retracing notices are expected: one model per genome)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def make_loss(name: str):
    import keras

    return {"bce": keras.losses.BinaryCrossentropy, "mse": keras.losses.MeanSquaredError}[name]()


def make_optimizer(genome: Genome):
    import keras

    return keras.optimizers.get(
        {"class_name": genome.optimizer, "config": {"learning_rate": genome.learning_rate}}
    )


def tf_dataset(x: np.ndarray, batch_size: int, *, shuffle_seed: int | None = None):
    """An (x, x) pipeline with tf.data autotune OFF: with it on, TF 2.21 idles 15-45 s at every
    iterator teardown (each epoch, fit and evaluate), see shared/PERFORMANCE-NOTES.md."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda b: (b, b)).prefetch(1)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def fit_autoencoder(
    model, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int, batch_size: int,
    patience: int, seed: int,
) -> tuple[float, int]:
    """Fit with early stopping on the fixed validation split; return (best val loss, epochs run).

    The best epoch's weights are restored, so the model matches the loss returned.
    """
    import keras

    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    history = model.fit(
        tf_dataset(x_train, batch_size, shuffle_seed=seed),
        validation_data=tf_dataset(x_val, batch_size),
        epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False,  # shuffled by tf.data
    )
    val = [v for v in history.history.get("val_loss", []) if math.isfinite(v)]
    epochs_run = len(history.history.get("loss", []))
    best = min(val) if val else float("nan")
    return best, epochs_run


def model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def evaluate_genome(task: EvalTask, data: Dataset) -> EvalResult:
    """Build, compile and train one genome; never raises: failures come back as status 'failed'."""
    import keras

    quiet_tensorflow()
    start = time.perf_counter()
    genome = task.genome
    shape = data.input_shape
    bottleneck = bottleneck_shape(genome, shape)
    record = EvalRecord(
        genome_key=genome.key_for(shape), architecture=describe_with_bottleneck(genome, shape),
        rec_loss=task.ref_point[0], loc=task.ref_point[1],
        bottleneck="x".join(str(d) for d in bottleneck), params=0, epochs=0,
        fit_seconds=0.0, seconds=0.0, status="failed",
    )
    model_bytes = None
    try:  # the previous evaluation cleared the Keras session in its `finally`
        keras.utils.set_random_seed(task.seed)
        autoencoder, _ = build_autoencoder(genome, shape, seed=task.seed)
        record.params = int(autoencoder.count_params())
        autoencoder.compile(optimizer=make_optimizer(genome), loss=make_loss(task.train.loss),
                            jit_compile=False)
        fit_start = time.perf_counter()
        loss, record.epochs = fit_autoencoder(
            autoencoder, data.x_train, data.x_val, epochs=task.train.epochs,
            batch_size=task.train.batch_size, patience=task.train.patience, seed=task.seed,
        )
        record.fit_seconds = round(time.perf_counter() - fit_start, 3)
        if not math.isfinite(loss):
            record.error = "loss is NaN or infinite"
        else:
            record.rec_loss = float(loss)
            record.loc = loc_of_shape(bottleneck)
            record.status = "ok"
            if task.keep_model:
                model_bytes = model_to_bytes(autoencoder)
    except Exception as err:  # noqa: BLE001 - any failure of one genome must not stop the run
        record.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    finally:
        keras.backend.clear_session()
    record.seconds = round(time.perf_counter() - start, 3)
    return EvalResult(record, model_bytes)


def run_task(task: EvalTask) -> EvalResult:
    """The unit of work an executor runs: load (cached) data, then evaluate."""
    try:
        data = cached_dataset(task.data)
    except Exception as err:  # noqa: BLE001
        rec = EvalRecord(task.key, task.genome.describe(), task.ref_point[0], task.ref_point[1],
                         "", 0, 0, 0.0, 0.0, "failed", f"data: {err}"[:300])
        return EvalResult(rec)
    return evaluate_genome(task, data)
