"""What the latent codes keep: a softmax classifier trained on a frozen encoder's codes.

The classifier is multinomial logistic regression on the flattened bottleneck:
`Flatten -> Normalization (per-feature mean/std of the training codes) -> Dense(classes, softmax)`,
trained with Adam (lr 1e-3, batch 64) on the training split's codes, then scored on the test
split (cross-entropy and accuracy). The encoder is never trained here.

Codes are computed once and kept in memory when they fit in `CODE_MEMORY_BUDGET`; a bigger
bottleneck (e.g. 28x28x256 on 50k images, about 40 GB) is streamed instead: the same
classifier is trained on top of the frozen encoder, which re-encodes each batch. Both paths
train the same model on the same codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402

from moncae.model.fast_update import speed_up_update  # noqa: E402
from moncae.model.training import CheckSignals, tf_dataset  # noqa: E402

CLASSIFIER_BATCH_SIZE = 256  # the paper: "in all training stages, if not otherwise specified, ... 256"
CLASSIFIER_LEARNING_RATE = 1e-3
CODE_MEMORY_BUDGET = 1 << 30  # bytes of float32 codes (train + test) kept in memory


@dataclass(frozen=True)
class LatentScore:
    loss: float  # test cross-entropy
    accuracy: float  # test accuracy in [0, 1]
    code_size: int  # values per image (flattened bottleneck)
    streamed: bool  # True when the codes did not fit in memory and were re-encoded per batch


class FrozenEncoder(keras.layers.Layer):
    """Runs an encoder in inference mode always (Dropout off, BatchNorm on moving statistics).

    Calling the encoder with `training=False` inside a functional model is not enough: Keras 3
    overrides that argument with `fit`'s `training=True`. This layer's `call` takes no
    `training` argument, so nothing is injected.
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.encoder.trainable = False

    def call(self, images):
        return self.encoder(images, training=False)

    def compute_output_shape(self, input_shape):
        return self.encoder.compute_output_shape(input_shape)


def encode(encoder, x: np.ndarray, *, batch_size: int, keep: bool = True):
    """Flattened codes of `x` (None unless `keep`) and their per-feature mean and variance.

    The statistics are accumulated in float64 batch by batch, so they cost no memory even
    when the codes themselves are not kept.
    """
    size = int(np.prod(encoder.output.shape[1:]))
    total, total_sq = np.zeros(size), np.zeros(size)
    kept = np.empty((len(x), size), dtype=np.float32) if keep else None
    start = 0
    for batch in tf_dataset(x, batch_size=batch_size):
        codes = np.asarray(encoder(batch, training=False), dtype=np.float32).reshape(-1, size)
        total += codes.sum(axis=0, dtype=np.float64)
        total_sq += np.square(codes, dtype=np.float64).sum(axis=0)
        if kept is not None:
            kept[start:start + len(codes)] = codes
        start += len(codes)
    mean = total / len(x)
    variance = np.maximum(total_sq / len(x) - np.square(mean), 0.0)
    return kept, mean, variance


def build_head(code_size: int, num_classes: int, mean: np.ndarray, variance: np.ndarray):
    """Normalization -> Dense softmax on flattened codes.

    A feature that is constant on the training codes (a dead unit) gets variance 1, so it is
    centred to 0 instead of being divided by ~0 (which would blow up on test codes).
    """
    variance = np.where(variance > 1e-12, variance, 1.0)
    return keras.Sequential([
        keras.Input(shape=(code_size,), name="code"),
        keras.layers.Normalization(mean=mean.astype(np.float32),
                                   variance=variance.astype(np.float32), name="standardize"),
        keras.layers.Dense(num_classes, activation="softmax", name="softmax"),
    ], name="latent_classifier")


def latent_classification(encoder, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                          y_test: np.ndarray, *, num_classes: int, epochs: int, seed: int,
                          encode_batch_size: int = 256,
                          memory_budget: int = CODE_MEMORY_BUDGET) -> LatentScore:
    """Train the softmax classifier on the frozen encoder's training codes; score it on test.

    Args:
        encoder: Keras model from images to the bottleneck; frozen here (`trainable=False`).
        num_classes: number of softmax outputs (labels are integers 0..num_classes-1).
        epochs: classifier training epochs (no early stopping: there is no held-out split).
        seed: seeds the classifier's initial weights and the shuffling.
        encode_batch_size: images per encoder call when computing codes.
        memory_budget: bytes of float32 codes kept in memory; above it, codes are streamed.
    """
    encoder.trainable = False
    code_size = int(np.prod(encoder.output.shape[1:]))
    streamed = (len(x_train) + len(x_test)) * code_size * 4 > memory_budget
    y_train, y_test = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)

    codes_train, mean, variance = encode(encoder, x_train, batch_size=encode_batch_size,
                                         keep=not streamed)
    keras.utils.set_random_seed(seed)
    head = build_head(code_size, num_classes, mean, variance)
    if streamed:
        images = keras.Input(shape=tuple(x_train.shape[1:]), name="image")
        codes = keras.layers.Flatten(name="flatten")(FrozenEncoder(encoder, name="frozen")(images))
        model = keras.Model(images, head(codes), name="encoder_classifier")
        train_x, test_x = x_train, x_test
    else:
        model = head
        train_x = codes_train
        test_x, _, _ = encode(encoder, x_test, batch_size=encode_batch_size)
    model.compile(optimizer=speed_up_update(keras.optimizers.Adam(CLASSIFIER_LEARNING_RATE)),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")], jit_compile=False)
    model.fit(tf_dataset(train_x, y_train, batch_size=CLASSIFIER_BATCH_SIZE, shuffle_seed=seed),
              epochs=epochs, verbose=0, shuffle=False, callbacks=[CheckSignals()])
    scores = model.evaluate(tf_dataset(test_x, y_test, batch_size=encode_batch_size), verbose=0,
                            return_dict=True)
    loss, accuracy = float(scores["loss"]), float(scores["acc"])
    if not math.isfinite(loss):
        raise FloatingPointError("latent classifier test loss is NaN or infinite")
    return LatentScore(loss, accuracy, code_size, streamed)
