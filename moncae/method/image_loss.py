"""Reconstruction losses per image, as plain NumPy, and how two coders compare on the same images.

A reconstruction loss is a mean over every pixel and channel of every image, as Keras defines it;
`image_losses` keeps one mean per image, so that two coders scored on one test split (an evolved
model and PCA of its latent size) can be compared image by image: `paired_difference` gives the
mean difference and its standard error from the per-image differences. Images differ in how hard
they are far more than two coders differ on one image, so this standard error is several times
smaller than that of either mean, and it is the one that says whether a model's lead over PCA is
more than the test split's draw of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moncae.errors import MoncaeError
from moncae.method.vae_loss import BCE_EPSILON

__all__ = ["EPSILON", "Z95", "PairedDifference", "image_losses", "paired_difference", "pixel_loss"]

EPSILON = BCE_EPSILON  # keras.config.epsilon(): how Keras clips probabilities in its BCE
Z95 = 1.959963984540054  # the normal distribution's two-sided 95% quantile


def pixel_loss(x: np.ndarray, x_hat: np.ndarray, loss: str, clip: float = EPSILON) -> np.ndarray:
    """Per-element loss of reconstructions `x_hat` of `x` (both in [0, 1]), as float64; `bce`
    clips `x_hat` to [clip, 1 - clip], `mse` to [0, 1] (the range of a sigmoid decoder)."""
    x = np.asarray(x, dtype=np.float64)
    p = np.asarray(x_hat, dtype=np.float64)
    if loss == "bce":
        p = np.clip(p, clip, 1.0 - clip)
        return -(x * np.log(p) + (1.0 - x) * np.log1p(-p))
    if loss == "mse":
        return (x - np.clip(p, 0.0, 1.0)) ** 2
    raise MoncaeError(f"`loss` must be bce or mse. Received: loss={loss!r}")


def image_losses(x: np.ndarray, x_hat: np.ndarray, loss: str, clip: float = EPSILON) -> np.ndarray:
    """Each image's mean `pixel_loss` (float64, one per image: their mean is the split's loss)."""
    per_pixel = pixel_loss(x, x_hat, loss, clip)
    return per_pixel.reshape(len(per_pixel), -1).mean(axis=1)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of per-image differences a - b over n images, and its standard error."""

    mean: float
    se: float
    n: int

    @property
    def low(self) -> float:
        """The 95% interval's lower end (normal approximation: n is hundreds to thousands)."""
        return self.mean - Z95 * self.se

    @property
    def high(self) -> float:
        return self.mean + Z95 * self.se

    @property
    def clear(self) -> bool:
        """Whether the 95% interval leaves out 0: a difference the images' draw does not explain."""
        return self.low > 0.0 or self.high < 0.0


def paired_difference(a: np.ndarray, b: np.ndarray) -> PairedDifference:
    """a - b over the same images (both one loss per image, in the same order): the mean
    difference and its standard error, std(a - b, ddof=1) / sqrt(n) (NaN for one image)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired losses need as many images on each side, at least one: {len(a)} and {len(b)}")
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return PairedDifference(float(d.mean()), se, len(d))
