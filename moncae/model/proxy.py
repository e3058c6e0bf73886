"""The decoder-only proxy of the RL architecture-search thesis (section 5.2): rank autoencoders by
training only the decoder of the symmetric conv AE, with the encoder left at its random
initialisation and frozen.

`train_decoder_only` builds the genome's autoencoder exactly as the search does (same seed: the
same initial weights a full training starts from), freezes every encoder layer (its convolutions,
batch norms, which then run in inference mode and keep their initial statistics, and a dense
latent if the genome has one), and fits the rest for `epochs` (default `PROXY_EPOCHS`) with the
genome's optimizer, early stopping on the validation loss as in a full training. The encoder's
weights are unchanged afterwards. The returned loss is the best validation loss: the proxy's score.

Whether its ranking agrees with end-to-end training is measured by `bench/proxy.py`, not assumed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moncae.method.genome import Genome
from moncae.model.decode import build_autoencoder
from moncae.model.training import fit_autoencoder, make_loss, make_optimizer, quiet_tensorflow

__all__ = ["PROXY_EPOCHS", "ProxyResult", "freeze_encoder", "train_decoder_only"]

PROXY_EPOCHS = 2  # decoder-only epochs (the thesis trains the decoder "fully"; here a short, fixed budget)


@dataclass
class ProxyResult:
    loss: float  # best validation loss with the random frozen encoder
    epochs: int  # epochs run (early stopping may end sooner)
    seconds: float  # the fit alone
    autoencoder: Any  # the Keras model (encoder frozen)
    encoder: Any


def freeze_encoder(encoder) -> int:
    """Make every layer of `encoder` (shared with its autoencoder) non-trainable; how many
    weights that freezes. Compile after this."""
    for layer in encoder.layers:
        layer.trainable = False
    return int(sum(np.prod(w.shape) for w in encoder.weights))


def train_decoder_only(genome: Genome, x_train: np.ndarray, x_val: np.ndarray, *,
                       input_shape: Sequence[int], epochs: int = PROXY_EPOCHS, batch_size: int = 64,
                       patience: int = 1, seed: int = 0, loss: str = "bce") -> ProxyResult:
    """Train `genome`'s decoder on `x_train` with a random frozen encoder (see the module docstring)."""
    import keras

    quiet_tensorflow()
    keras.utils.set_random_seed(seed)
    autoencoder, encoder = build_autoencoder(genome, input_shape, seed=seed)
    freeze_encoder(encoder)
    autoencoder.compile(optimizer=make_optimizer(genome), loss=make_loss(loss), jit_compile=False)
    start = time.perf_counter()
    fit = fit_autoencoder(autoencoder, x_train, x_val, epochs=epochs, batch_size=batch_size,
                          patience=patience, seed=seed)
    return ProxyResult(fit.best, fit.epochs, time.perf_counter() - start, autoencoder, encoder)
