"""The dense reference autoencoders of `moncae report --baselines`: a dense AE and a dense VAE
with k latent values (the MNIST study's non-linear and variational autoencoders).

Architecture (both; the constants are in `moncae.method.dense_baselines`): Flatten ->
Dense(HIDDEN_UNITS, relu) -> code -> Dense(HIDDEN_UNITS, relu) -> Dense(pixels, sigmoid) ->
Reshape(input shape). The AE's code is Dense(k, linear); the VAE's is a mean and a log-variance
Dense(k) each, sampled by `moncae.model.vae.GaussianSample` (the mean outside training).
Trained with Adam (lr LEARNING_RATE), batch BATCH_SIZE, up to EPOCHS epochs on the training
split with early stopping on the validation split (patience PATIENCE, best weights restored),
seeded. The AE trains with the run's loss (bce or mse), the VAE with a VAE loss (elbo, or a
VAE run's own); `train_dense_baseline` returns the test split's reconstructions (the VAE's of
its mean) and the VAE's test prior KL, which the report scores
with the run's reconstruction loss exactly as it scores PCA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402
from keras import layers  # noqa: E402

from moncae.method.dense_baselines import (  # noqa: E402
    BATCH_SIZE,
    EPOCHS,
    HIDDEN_UNITS,
    LEARNING_RATE,
    PATIENCE,
)
from moncae.model.fast_update import speed_up_update  # noqa: E402
from moncae.model.training import fit_autoencoder, make_loss  # noqa: E402
from moncae.model.vae import GaussianSample, VAEParts, compile_vae, fit_vae, vae_kl  # noqa: E402

__all__ = ["BaselineScore", "train_dense_baseline"]



@dataclass(frozen=True)
class BaselineScore:
    reconstructions: np.ndarray  # of the test split (float32, the input's shape)
    kl: float  # dense_vae: test prior KL per latent dimension; NaN for dense_ae
    epochs: int
    seconds: float


def _init(seed: int, offset: int) -> dict:
    return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed + offset)}


def _dense_parts(kind: str, k: int, input_shape: Sequence[int], seed: int):
    pixels = math.prod(input_shape)
    image = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Flatten(name="flatten")(image)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", name="enc_hidden", **_init(seed, 0))(x)
    code = keras.Input(shape=(k,), name="code")
    y = layers.Dense(HIDDEN_UNITS, activation="relu", name="dec_hidden", **_init(seed, 3))(code)
    y = layers.Dense(pixels, activation="sigmoid", name="reconstruction", **_init(seed, 4))(y)
    y = layers.Reshape(tuple(input_shape), name="reshape")(y)
    decoder = keras.Model(code, y, name="decoder")
    if kind == "dense_ae":
        z = layers.Dense(k, name="latent", **_init(seed, 1))(x)
        return keras.Model(image, decoder(z), name="dense_ae"), None
    mu = layers.Dense(k, name="latent", **_init(seed, 1))(x)
    log_var = layers.Dense(k, name="latent_log_var", **_init(seed, 2))(x)
    z = GaussianSample(seed + 5, name="sample")([mu, log_var])
    vae = keras.Model(image, decoder(z), name="dense_vae")
    return vae, VAEParts(vae=vae, encoder=keras.Model(image, mu), stats=keras.Model(image, [mu, log_var]),
                         decoder=decoder)


def train_dense_baseline(kind: str, k: int, x_train: np.ndarray, x_val: np.ndarray,
                         x_test: np.ndarray, *, loss: str, vae_loss: str = "elbo",
                         vae_eps: float = 0.01, seed: int = 0) -> BaselineScore:
    """Train one dense baseline (`kind` dense_ae or dense_vae) with k latent values; return its
    test reconstructions. `loss` (bce or mse) is the AE's training loss; the VAE trains with
    `vae_loss` (elbo or reformulated, eps `vae_eps`)."""
    if kind not in ("dense_ae", "dense_vae"):
        raise ValueError(f"unknown dense baseline {kind!r}")
    start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model, parts = _dense_parts(kind, int(k), x_train.shape[1:], seed)
    optimizer = speed_up_update(keras.optimizers.Adam(LEARNING_RATE))
    try:
        if parts is None:
            model.compile(optimizer=optimizer, loss=make_loss(loss), jit_compile=False)
            epochs = fit_autoencoder(model, x_train, x_val, epochs=EPOCHS, batch_size=BATCH_SIZE,
                                     patience=PATIENCE, seed=seed).epochs
            kl = float("nan")
        else:
            compile_vae(parts, optimizer, vae_loss, vae_eps)
            epochs = fit_vae(parts, x_train, x_val, epochs=EPOCHS, batch_size=BATCH_SIZE,
                             patience=PATIENCE, seed=seed).epochs
            kl = vae_kl(parts.stats, x_test, BATCH_SIZE)
        recon = np.concatenate([np.asarray(model(x_test[i:i + BATCH_SIZE], training=False))
                                for i in range(0, len(x_test), BATCH_SIZE)])
    finally:
        keras.backend.clear_session()
    return BaselineScore(recon.astype(np.float32), float(kl), int(epochs),
                         round(time.perf_counter() - start, 3))

