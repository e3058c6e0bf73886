"""Training helpers shared by the search and the fine-tune: loss, optimizer, tf.data input,
early-stopped fit, and a model as bytes. Every Keras training in moncae goes through here."""

from __future__ import annotations

import math
import os
import tempfile
import time
import weakref

import numpy as np

from moncae.method.genome import Genome
from moncae.model.fast_update import speed_up_update
from moncae.model.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402

__all__ = ["ValidationLoss", "build_optimizer", "end_session", "evaluate_loss", "fit_autoencoder",
           "inference_latency_ms", "make_loss", "make_optimizer", "model_to_bytes", "quiet_tensorflow",
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


def tf_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int,
               shuffle_seed: int | None = None, autoencoder: bool = False):
    """Batches of `x`, `(x, y)`, or with `autoencoder` `(x, x)`, via tf.data with autotune OFF.

    With autotune on, TF 2.21 idles 15-45 s at every iterator teardown (each epoch, fit and
    evaluate), see shared/PERFORMANCE-NOTES.md. Shuffling (when seeded) happens every epoch.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if autoencoder:
        ds = ds.map(lambda b: (b, b))
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


_LOSS_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its traced loss


def _loss_step(model, image_shape: tuple[int, ...]):
    """`model`'s compiled loss on a batch of images (their own target), as a `tf.function`
    traced once per model (any batch size): a forward pass and the loss, no metrics."""
    step = _LOSS_STEPS.get(model)
    if step is None:
        import tensorflow as tf

        if model.losses:  # Keras would add them (regularisers, `add_loss`): not measured here
            raise ValueError("evaluate_loss measures the compiled loss only; this model adds losses of its own")

        ref, loss = weakref.ref(model), model.loss  # the step does not keep the model alive
        step = tf.function(lambda x: loss(x, ref()(x, training=False)), autograph=False,
                           input_signature=[tf.TensorSpec((None, *image_shape), tf.float32)])
        _LOSS_STEPS[model] = step
    return step


def evaluate_loss(model, x: np.ndarray, batch_size: int) -> float:
    """The compiled loss of an autoencoder on `x` (its own target), `batch_size` images at a time
    through one traced forward pass per model: the same number as Keras' `evaluate` to the bit
    (the same batches, and the batch losses summed as its `Mean` does, in float32), without
    tracing a test step for each model (`tests/test_validation_loss.py`)."""
    if len(x) == 0:
        raise ValueError("no images to measure the loss on")
    x = np.asarray(x, dtype=np.float32)
    step = _loss_step(model, tuple(x.shape[1:]))
    total = count = np.float32(0.0)  # Keras' `Mean`: float32 sums of loss x images, and of images
    for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        total = np.float32(total + np.float32(step(part)) * np.float32(len(part)))
        count = np.float32(count + np.float32(len(part)))
    return float(total / count)


class ValidationLoss(keras.callbacks.Callback):
    """Puts `val_loss` (`evaluate_loss` on `x_val`) in each epoch's logs, for the callbacks after
    it (early stopping) and `fit`'s history; `seconds` keeps how long each took."""

    def __init__(self, x_val: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.x_val, self.batch_size = x_val, batch_size
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        loss = evaluate_loss(self.model, self.x_val, self.batch_size)
        self.seconds.append(time.perf_counter() - start)
        if logs is not None:
            logs["val_loss"] = loss


def fit_autoencoder(
    model, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int, batch_size: int,
    patience: int, seed: int,
) -> tuple[float, int]:
    """Fit with early stopping on the fixed validation split; return (best val loss, epochs run).

    The validation loss is `evaluate_loss`'s (a `ValidationLoss` callback) instead of Keras' own
    validation pass: the same numbers, without a test step traced for each model (3-4% less
    time per training on one thread here, `docs/measurements.md`). The best epoch's weights are
    restored, so the model matches the loss returned.
    """
    callbacks = [
        ValidationLoss(x_val, batch_size),  # first: the callbacks after it read its val_loss
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    build_optimizer(model)
    history = model.fit(
        tf_dataset(x_train, batch_size=batch_size, shuffle_seed=seed, autoencoder=True),
        epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False,  # shuffled by tf.data
    )
    val = [v for v in history.history.get("val_loss", []) if math.isfinite(v)]
    epochs_run = len(history.history.get("loss", []))
    best = min(val) if val else float("nan")
    return best, epochs_run


def model_to_bytes(model) -> bytes:
    """The model as a `.keras` file's bytes (what a worker sends back to the driver)."""
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
