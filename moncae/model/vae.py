"""Decode a genome into a Keras 3 convolutional VAE, and its losses in Keras ops.

The encoder is the AE's (`moncae.model.decode`: the genome's active blocks in order). Its last
feature map (h, w, c) is produced twice by two linear 1x1 Conv2D heads, `latent_mean` and
`latent_log_var`, each of shape (h, w, c): the same LOC = log10(h*w*c) as the AE of the genome.
With a dense latent gene (the `dense` space) the heads are Dense(units) after a Flatten
(`latent`, named like the AE's dense code, and `latent_log_var`). `GaussianSample` clips the
log-variance's value to [-LOG_VAR_LIMIT, LOG_VAR_LIMIT] (its gradient passes straight through,
so a clipped log-variance is still pulled back by the KL), adds the prior KL to the model's losses
(`add_loss`: per latent dimension, see `moncae.method.vae_loss`), and returns
z = mu + exp(log_var / 2) * noise (seeded: a `keras.random.SeedGenerator`) while training, and
z = mu otherwise: validation, test, reconstructions and the latent classifier use the mean.
The decoder is the AE's mirrored decoder, from z; it is also a model of its own
(`VAEParts.decoder`, sharing the layers) that turns N(0, I) draws into images.

The reconstruction term is the compiled loss (`make_vae_loss`): per-pixel BCE (`elbo`) or the
reformulated KL of the pixel differences (`reformulated`); Keras adds the prior KL to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from moncae.method.genome import Genome  # noqa: E402
from moncae.method.vae_loss import (  # noqa: E402
    DEFAULT_VAE_EPS,
    LOG_VAR_LIMIT,
    VARIANCE_FLOOR,
)
from moncae.model.decode import IMAGES, LATENT_ACTIVATION, _decode, _encode, _seeds  # noqa: E402

__all__ = ["GaussianSample", "ReformulatedReconstruction", "VAEFit", "VAEParts", "build_vae",
           "compile_vae", "decode_prior_samples", "evaluate_vae", "fit_vae", "kl_prior_op",
           "make_vae_loss", "prior_decoder", "vae_kl"]

SAMPLE_SEED_OFFSET = 3000  # the sampling noise's seed: the evaluation seed + this


def kl_prior_op(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, I)) per image, per latent dimension (Keras ops)."""
    per_value = 0.5 * (ops.square(mu) + ops.exp(log_var) - 1.0 - log_var)
    return ops.mean(ops.reshape(per_value, (ops.shape(per_value)[0], -1)), axis=1)


@keras.saving.register_keras_serializable(package="moncae")
class GaussianSample(layers.Layer):
    """[mu, log_var] -> z: a reparameterised sample while training, mu otherwise; adds the
    batch mean of the prior KL (per latent dimension) to the model's losses."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mu, log_var = inputs
        # clipped in value (exp never overflows) but not in gradient (straight through): a
        # log-variance beyond the limit still feels the prior KL pulling it back
        log_var = log_var + ops.stop_gradient(ops.clip(log_var, -LOG_VAR_LIMIT, LOG_VAR_LIMIT) - log_var)
        self.add_loss(ops.mean(kl_prior_op(mu, log_var)))
        if not training:
            return mu
        noise = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        return mu + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="moncae")
class ReformulatedReconstruction(keras.losses.Loss):
    """The thesis's reformulated reconstruction term per image (see moncae.method.vae_loss)."""

    def __init__(self, eps: float = DEFAULT_VAE_EPS, name: str = "reformulated", **kwargs):
        super().__init__(name=name, **kwargs)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        d = ops.reshape(ops.cast(y_true, y_pred.dtype) - y_pred, (ops.shape(y_pred)[0], -1))
        mean_sq = ops.mean(ops.square(d), axis=1)
        var = ops.mean(ops.square(d - ops.mean(d, axis=1, keepdims=True)), axis=1)
        return (np.log(self.eps) - 0.5 * ops.log(var + VARIANCE_FLOOR)
                + mean_sq / (2.0 * self.eps**2) - 0.5)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


def make_vae_loss(name: str, eps: float = DEFAULT_VAE_EPS):
    """The compiled (reconstruction) part of VAE loss `name`; the prior KL comes from the model."""
    if name == "elbo":
        return keras.losses.BinaryCrossentropy()
    if name == "reformulated":
        return ReformulatedReconstruction(eps)
    raise ValueError(f"unknown VAE loss {name!r}")


@dataclass
class VAEParts:
    """A built VAE: `vae` (image -> reconstruction; the model trained and saved), `encoder`
    (image -> mu, the code the latent classifier reads), `stats` (image -> [mu, log_var]) and
    `decoder` (z -> image). All share their layers with `vae`."""

    vae: keras.Model
    encoder: keras.Model
    stats: keras.Model
    decoder: keras.Model


def build_vae(genome: Genome, input_shape: Sequence[int], seed: int | None = None) -> VAEParts:
    """The genome's VAE (not compiled). With `seed`, weights, dropout masks and the sampling
    noise are fixed by it alone."""
    blocks = genome.blocks_for(input_shape)
    inputs, x, sizes, conv_shape = _encode(blocks, input_shape, seed)
    units = genome.latent_units
    if units is None:
        mu = layers.Conv2D(conv_shape[2], 1, data_format=IMAGES, name="latent_mean", **_seeds(seed, 500))(x)
        log_var = layers.Conv2D(conv_shape[2], 1, data_format=IMAGES, name="latent_log_var",
                                **_seeds(seed, 501))(x)
        code_shape = conv_shape
    else:
        x = layers.Flatten(data_format=IMAGES, name="latent_flatten")(x)
        mu = layers.Dense(units, activation=LATENT_ACTIVATION, name="latent", **_seeds(seed, 500))(x)
        log_var = layers.Dense(units, name="latent_log_var", **_seeds(seed, 501))(x)
        code_shape = (units,)
    z = GaussianSample(None if seed is None else seed + SAMPLE_SEED_OFFSET, name="sample")([mu, log_var])

    code = keras.Input(shape=code_shape, name="code")
    y = _decode(code, blocks, sizes, conv_shape, input_shape[-1], dense=units is not None, seed=seed)
    decoder = keras.Model(code, y, name="decoder")
    out = z
    for layer in decoder.layers[1:]:  # the decoder is a chain: reuse its layers flat in the VAE
        out = layer(out)
    return VAEParts(vae=keras.Model(inputs, out, name="vae"),
                    encoder=keras.Model(inputs, mu, name="encoder"),
                    stats=keras.Model(inputs, [mu, log_var], name="posterior"),
                    decoder=decoder)


def vae_kl(stats: keras.Model, x: np.ndarray, batch_size: int) -> float:
    """The mean prior KL per latent dimension over `x` (the posterior at inference)."""
    from moncae.method.vae_loss import kl_prior

    total = 0.0
    for start in range(0, len(x), batch_size):
        mu, log_var = stats(x[start:start + batch_size], training=False)
        log_var = np.clip(np.asarray(log_var), -LOG_VAR_LIMIT, LOG_VAR_LIMIT)
        total += float(np.sum(kl_prior(np.asarray(mu), log_var)))
    return total / len(x)



@dataclass(frozen=True)
class VAEFit:
    """What `fit_vae` measured at the best epoch (lowest validation VAE loss; the last one without
    early stopping)."""

    val_loss: float  # the validation VAE loss (reconstruction term + prior KL)
    bce: float  # the validation per-pixel BCE of the mean decoding: the search's objective
    epochs: int


def compile_vae(parts: VAEParts, optimizer, loss: str, eps: float = DEFAULT_VAE_EPS) -> None:
    """Compile with the VAE loss and a per-pixel BCE metric (`bce`, of the mean decoding when
    evaluated)."""
    parts.vae.compile(optimizer=optimizer, loss=make_vae_loss(loss, eps),
                      metrics=[keras.metrics.BinaryCrossentropy(name="bce")], jit_compile=False)


def fit_vae(parts: VAEParts, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int,
            batch_size: int, patience: int | None, seed: int) -> VAEFit:
    """Fit with early stopping on the validation VAE loss; the best epoch's weights are restored
    (so the model matches the values returned). `patience=None`: all `epochs`, the last epoch's
    weights and values."""
    from moncae.model.training import CheckSignals, build_optimizer, tf_dataset

    callbacks = [keras.callbacks.TerminateOnNaN(), CheckSignals()]
    if patience is not None:
        callbacks.insert(0, keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                          restore_best_weights=True))
    build_optimizer(parts.vae)
    history = parts.vae.fit(
        tf_dataset(x_train, batch_size=batch_size, shuffle_seed=seed, autoencoder=True),
        validation_data=tf_dataset(x_val, batch_size=batch_size, autoencoder=True),
        epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False,
    ).history
    losses = np.array(history.get("val_loss", []), dtype=float)
    bces = np.array(history.get("val_bce", []), dtype=float)
    epochs_run = len(history.get("loss", []))
    ok = np.isfinite(losses) & np.isfinite(bces[:len(losses)])
    if patience is None:  # the last epoch's weights
        ok[:-1] = False
    if not ok.any():
        return VAEFit(float("nan"), float("nan"), epochs_run)
    best = int(np.flatnonzero(ok)[np.argmin(losses[ok])])
    return VAEFit(float(losses[best]), float(bces[best]), epochs_run)


def evaluate_vae(parts: VAEParts, x: np.ndarray, batch_size: int) -> tuple[float, float, float]:
    """(VAE loss, per-pixel BCE of the mean decoding, prior KL per latent dimension) on `x`."""
    from moncae.model.training import tf_dataset

    scores = parts.vae.evaluate(tf_dataset(x, batch_size=batch_size, autoencoder=True), verbose=0,
                                return_dict=True)
    return float(scores["loss"]), float(scores["bce"]), vae_kl(parts.stats, x, batch_size)


def prior_decoder(vae: keras.Model) -> keras.Model:
    """The decoder (z -> image) of a built or loaded VAE: the chain of layers after its
    `sample` layer, applied to a new input of the code's shape (sharing their weights)."""
    names = [layer.name for layer in vae.layers]
    if "sample" not in names:
        raise ValueError("not a moncae VAE (it has no `sample` layer)")
    start = names.index("sample")
    code = keras.Input(shape=tuple(vae.layers[start].output.shape[1:]), name="code")
    out = code
    for layer in vae.layers[start + 1:]:
        out = layer(out)
    return keras.Model(code, out, name="decoder")


def decode_prior_samples(vae: keras.Model, n: int, seed: int) -> np.ndarray:
    """`n` images decoded from z ~ N(0, I) draws (NumPy, seeded: the same draws for every model
    with one code shape)."""
    decoder = prior_decoder(vae)
    shape = tuple(decoder.input.shape[1:])
    z = np.random.default_rng(seed).standard_normal((n, *shape)).astype("float32")
    return np.clip(np.asarray(decoder(z, training=False)), 0.0, 1.0)
