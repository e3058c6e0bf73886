"""Training helpers shared by the search and the fine-tune: loss, optimizer, tf.data input,
early-stopped training loop, and a model as bytes. Every Keras training in moncae goes through here."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from moncae.interrupts import check_signals
from moncae.method.genome import Genome
from moncae.method.image_loss import image_losses
from moncae.model.fast_update import speed_up_update
from moncae.model.steps import loss_step, train_step
from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402

__all__ = ["Fit", "build_optimizer", "end_session", "evaluate_loss", "fit_autoencoder", "inference_latency_ms",
           "make_loss", "make_optimizer", "model_to_bytes", "quiet_tensorflow", "reconstruction_losses",
           "tf_dataset"]

LOSSES = {"bce": keras.losses.BinaryCrossentropy, "mse": keras.losses.MeanSquaredError}


def quiet_tensorflow() -> None:
    """Silence TF's Python-side warnings (retracing notices are expected: one model per genome)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def make_loss(name: str):
    return LOSSES[name]()


def make_optimizer(genome: Genome):
    """The genome's Keras optimizer; Adam, Nadam and RMSprop with an update that traces faster
    and gives the same weights to the bit (`moncae.model.fast_update`)."""
    return speed_up_update(keras.optimizers.get(
        {"class_name": genome.optimizer, "config": {"learning_rate": genome.learning_rate}}
    ))


def _as_input_and_target(batch):
    return batch, batch


def _gather(arrays, indices):
    """A batch: the rows `indices` of each array (one array: its rows alone)."""
    import tensorflow as tf

    batch = tuple(tf.gather(a, indices) for a in arrays)
    return batch if len(batch) > 1 else batch[0]


def tf_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int,
               shuffle_seed: int | None = None, autoencoder: bool = False):
    """Batches of `x`, `(x, y)`, or with `autoencoder` `(x, x)`, via tf.data with autotune OFF.

    With autotune on, TF 2.21 idles 15-45 s at every iterator teardown (each epoch, fit and
    evaluate), see shared/PERFORMANCE-NOTES.md. Shuffling (when seeded) happens every epoch, of
    the images' indices: each batch is gathered from one copy of the images. Shuffling the images
    themselves filled tf.data's buffer with a second whole copy of them for every training (+356
    MB on full Fashion-MNIST, +1.8 GB on 20k 64x64x3 images, a helper's audit); a seeded shuffle's
    order does not depend on what it shuffles, so the batches are the same to the bit
    (`tests/test_tf_dataset.py`).
    """
    import tensorflow as tf

    # Not converted by AutoGraph: converting writes a file to the temp folder per call, which a
    # worker process that is terminated never deletes.
    plain = tf.autograph.experimental.do_not_convert
    if shuffle_seed is None:
        ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(batch_size)
    else:
        with tf.device("/CPU:0"):  # a variable: a captured constant would be copied into the map's graph
            arrays = tuple(tf.Variable(a, trainable=False) for a in ((x,) if y is None else (x, y)))
        ds = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(plain(functools.partial(_gather, arrays)))
    if autoencoder:
        ds = ds.map(plain(_as_input_and_target))
    ds = ds.prefetch(1)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def build_optimizer(model) -> None:
    """Create the compiled model's optimizer variables now, before `fit`.

    Keras' TF trainer otherwise creates them inside the first trace of the train step, and a
    `tf.function` whose first trace creates variables is traced a second time: that doubled the
    graph tracing of every new model (mean first batch 2.00 s against 1.10 s here,
    `bench/first_batch.py`). The values are
    the same either way (zeros, Adagrad's initial accumulator, ...): building is not seeded.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def evaluate_loss(model, x: np.ndarray, batch_size: int) -> float:
    """The compiled loss of an autoencoder on `x` (its own target), `batch_size` images at a time
    through one traced forward pass per model (`moncae.model.steps.loss_step`): the same number as
    Keras' `evaluate` to the bit (the same batches, and the batch losses summed as its `Mean`
    does, in float32), without tracing a test step for each model (`tests/test_validation_loss.py`)."""
    if len(x) == 0:
        raise ValueError("no images to measure the loss on")
    x = np.asarray(x, dtype=np.float32)
    step = loss_step(model, tuple(x.shape[1:]))
    total = count = np.float32(0.0)  # Keras' `Mean`: float32 sums of loss x images, and of images
    for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        total = np.float32(total + np.float32(step(part)) * np.float32(len(part)))
        count = np.float32(count + np.float32(len(part)))
    return float(total / count)


def reconstruction_losses(model, x: np.ndarray, batch_size: int, loss: str) -> np.ndarray:
    """Each image's reconstruction loss `loss` (bce or mse, `moncae.method.image_loss.image_losses`:
    float64, Keras' clip) under `model` in inference (a VAE: its mean decoding), `batch_size` images
    at a time; their mean is the model's loss on `x` up to float32 rounding."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty(len(x))
    for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        out[start:start + len(part)] = image_losses(part, np.asarray(model(part, training=False)), loss)
    return out


@dataclass
class Fit:
    """What `fit_autoencoder` did: the best epoch's validation loss (NaN if none was finite), the
    epochs run, and the seconds of every training batch (its input included) and of every
    epoch's validation pass, in order (the first of each traces a graph for a new model)."""

    best: float
    epochs: int
    batch_seconds: list[float] = field(default_factory=list)
    validation_seconds: list[float] = field(default_factory=list)


def fit_autoencoder(
    model, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int, batch_size: int,
    patience: int | None, seed: int,
) -> Fit:
    """Train `model` (compiled) to reconstruct `x_train` for up to `epochs` epochs, stopping
    early on the loss on the fixed validation split and restoring the best epoch's weights, so the
    model matches the loss returned. `patience=None`: no early stopping, all `epochs` (a batch
    whose loss is not finite still stops), and the last epoch's weights and loss.

    The same training as Keras' `fit` with `EarlyStopping(restore_best_weights=True)` and
    `TerminateOnNaN` on a seeded `tf_dataset`, to the bit, without `fit` around its step: one
    traced step per model (`moncae.model.steps.train_step`), the validation loss by
    `evaluate_loss` (no test step traced for each model, 3-4% less time per training), Keras' own
    `EarlyStopping` driven epoch by epoch, and a stop after a batch whose loss is not finite.
    `fit` makes a new iterator over the data at the end of every epoch, which draws a shuffle
    order, and one more at the start of the next, which is used: the loop draws that unused
    order too, so the batches are `fit`'s (`tests/test_train_loop.py`).
    """
    x_train = np.asarray(x_train, dtype=np.float32)
    if len(x_train) == 0:
        raise ValueError("no images to train on")
    build_optimizer(model)
    step = train_step(model, tuple(x_train.shape[1:]))
    data = tf_dataset(x_train, batch_size=batch_size, shuffle_seed=seed)
    stopping = None if patience is None else keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True)
    if stopping is not None:
        stopping.set_model(model)
        stopping.on_train_begin()
    model.stop_training = False
    fit = Fit(float("nan"), 0)
    losses = []
    for epoch in range(epochs):
        if epoch:
            iter(data)  # the order `fit` draws and drops at the end of each epoch
        start = time.perf_counter()
        for batch in data:
            check_signals()  # a Ctrl-C held while training in this process (moncae.interrupts)
            finite = math.isfinite(float(step(batch)))
            now = time.perf_counter()
            fit.batch_seconds.append(now - start)
            start = now
            if not finite:  # TerminateOnNaN: an epoch's mean loss is finite while its batches are
                model.stop_training = True
                break
        start = time.perf_counter()
        loss = evaluate_loss(model, x_val, batch_size)
        fit.validation_seconds.append(time.perf_counter() - start)
        losses.append(loss)
        if stopping is not None:
            stopping.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            break
    fit.epochs = len(losses)
    if stopping is None:  # the weights are the last epoch's
        fit.best = losses[-1] if losses and math.isfinite(losses[-1]) else float("nan")
        return fit
    stopping.on_train_end()
    finite = [v for v in losses if math.isfinite(v)]
    fit.best = min(finite) if finite else float("nan")
    return fit


@contextlib.contextmanager
def float32_keras() -> Iterator[None]:
    """Within: Keras' float32 defaults, which every moncae number is made with, whatever a
    notebook set in this process (a `mixed_bfloat16` policy, `floatx` float64); put back after (a
    training's `clear_session` would reset the policy otherwise)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


class CheckSignals(keras.callbacks.Callback):
    """For Keras' `fit`: a Ctrl-C held while training in this process acts after a batch
    (`moncae.interrupts`); the training's numbers do not change."""

    def on_train_batch_end(self, batch, logs=None):
        check_signals()


def model_to_bytes(model, *, optimizer: bool = True) -> bytes:
    """The model as a `.keras` file's bytes (what a worker sends back to the driver).

    `optimizer=False` (a functional model): the network and its weights, uncompiled, without the
    optimizer's state, which no reader loads (a promotion rewinds its optimizer, inheritance,
    the fine-tune and export take the weights alone): a `quick` model's file 1.1 MB against
    3.3 MB (Adam keeps two slots a weight) and saved in 64 ms against 117 ms. The weights are the
    same; a twin over the same layers is saved, so the model itself is left as it is."""
    if not optimizer:
        model = keras.Model(model.input, model.output, name=model.name)  # its structure: one tensor, not a list
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()



GC_EVERY = 20  # trainings between two full garbage collections (see end_session)
_since_gc = 0


def end_session() -> None:
    """Reset Keras' global state after a training (`clear_session`) without its full garbage
    collection each time: that `gc.collect()` took 0.16-0.22 s per training here, ~7% of a
    `quick` rung-0 training; one every `GC_EVERY` trainings bounds the memory just as well.
    Results do not depend on it (every training is seeded and names its layers)."""
    global _since_gc
    _since_gc += 1
    collect = _since_gc >= GC_EVERY
    if collect:
        _since_gc = 0
    try:
        keras.backend.clear_session(free_memory=collect)
    except TypeError:  # a Keras 3 before `free_memory`: it always collects
        keras.backend.clear_session()


LATENCY_WARMUP = 3  # calls before timing (the first traces the graph)
LATENCY_REPEATS = 25  # timed calls; the median is reported


def inference_latency_ms(model, image: np.ndarray, *, repeats: int = LATENCY_REPEATS) -> float:
    """Median wall-clock milliseconds of one forward pass at batch 1 (`image`: one HxWxC array),
    through a compiled `tf.function`, after `LATENCY_WARMUP` untimed calls. A measurement: it
    depends on the machine and on what else runs on it."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    batch = tf.constant(image[None].astype("float32"))
    for _ in range(LATENCY_WARMUP):
        forward(batch).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(batch).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)
