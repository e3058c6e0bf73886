"""The PCA baseline front: a linear autoencoder with k latent values, for each k.

PCA is fitted on the training split; its reconstructions of the test split are scored with
the run's own loss, defined as Keras defines it (mean over every pixel and channel):

- `bce`: `-(x log p + (1 - x) log(1 - p))` with `p` clipped to `[delta, 1 - delta]`. PCA is the
  best linear code under squared error, not under BCE: 12-26% of its reconstructed Fashion-MNIST
  pixels lie outside [0, 1], and a clip at Keras' `eps = 1e-7` scores each such pixel as a near
  certainty. So `delta` is fitted for each k on the training split (`fit_clip`: the value of
  `CLIP_GRID` with the lowest BCE on up to `CLIP_IMAGES` training images), which lowers PCA's
  test BCE by 0.003-0.007 on Fashion-MNIST: the linear reference is as strong as a clip can make
  it (since 2026-12-07; `eps = 1e-7` before);
- `mse`: `(x - p) ** 2` with `p` clipped to `[0, 1]`, the range of the decoder's sigmoid.

A point is plotted at `LOC = log10(k)`: k latent values, like a bottleneck of k values. An
evolved convolutional front should lie below this curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moncae.errors import MoncaeError
from moncae.method.image_loss import EPSILON, image_losses, pixel_loss

__all__ = ["CLIP_GRID", "CLIP_IMAGES", "EPSILON", "PCA_COLUMNS", "PcaFit", "baseline_ks", "fit_clip", "fit_pca",
           "max_components", "pca_baseline", "pca_image_losses", "pixel_loss"]

PCA_COLUMNS = ["k", "loc", "rec_loss"]
# the clips PCA's BCE reconstructions may take (`fit_clip`): Keras' eps, then 1e-6 .. 0.2
CLIP_GRID = (EPSILON, *np.logspace(-6.0, -0.7, 40).tolist())
CLIP_IMAGES = 3000  # training images (a seeded draw) the clip is fitted on


def baseline_ks(latent_sizes: Iterable[int], max_k: int) -> list[int]:
    """The runs' latent sizes plus powers of two, and `max_k` itself, all within [1, max_k]."""
    ks = {int(k) for k in latent_sizes if 1 <= int(k) <= max_k}
    ks.update(2 ** i for i in range(int(math.log2(max_k)) + 1))
    ks.add(int(max_k))
    return sorted(ks)


def max_components(n_train: int, n_pixels: int) -> int:
    """The most components that are determined by the data: centring n images leaves rank
    <= n - 1, and components beyond it are arbitrary null-space directions."""
    return max(1, min(n_train - 1, n_pixels))


@dataclass(frozen=True)
class PcaFit:
    """A PCA fitted on a training split: its mean and components (rows, by decreasing variance)."""

    mean: np.ndarray  # float64, (pixels,)
    components: np.ndarray  # float64, (n, pixels)


def fit_pca(x_train: np.ndarray, n_components: int) -> PcaFit:
    """PCA of the flattened training images, `n_components` components."""
    from sklearn.decomposition import PCA

    train = np.asarray(x_train).reshape(len(x_train), -1)
    # covariance_eigh (scikit-learn >= 1.5) is exact and fast when images outnumber pixels
    solver = "covariance_eigh" if len(train) >= train.shape[1] else "full"
    try:
        pca = PCA(n_components=n_components, svd_solver=solver).fit(train)
    except ValueError:  # older scikit-learn without covariance_eigh
        pca = PCA(n_components=n_components, svd_solver="full").fit(train)
    return PcaFit(pca.mean_.astype(np.float64), pca.components_.astype(np.float64))


def fit_clip(x: np.ndarray, x_hat: np.ndarray) -> float:
    """The value of CLIP_GRID whose clip gives reconstructions `x_hat` of `x` the lowest BCE
    (the first of equals)."""
    losses = [pixel_loss(x, x_hat, "bce", clip).mean() for clip in CLIP_GRID]
    return float(CLIP_GRID[int(np.argmin(losses))])


def pca_baseline(x_train: np.ndarray, x_test: np.ndarray, ks: Iterable[int], loss: str, *,
                 batch_size: int = 2048, fit: PcaFit | None = None) -> pd.DataFrame:
    """Test reconstruction loss of a PCA with k components, for each k (fitted once).

    PCA components are nested (the first k of a larger fit are the k-component fit), so one
    fit with the largest k serves every k; `fit`, a `fit_pca` of these training images with at
    least that many components, is used instead of fitting again (a report's settings groups on
    one dataset share it). Under `bce` each k's reconstructions are clipped at its `fit_clip` on
    up to CLIP_IMAGES training images. Returns columns `k, loc, rec_loss`, sorted by k; values of
    k above `max_components` (training images - 1, or pixels) are dropped.
    """
    per_image = pca_image_losses(x_train, x_test, ks, loss, batch_size=batch_size, fit=fit)
    if not per_image:
        return pd.DataFrame(columns=PCA_COLUMNS)
    ks = sorted(per_image)
    return pd.DataFrame({"k": ks, "loc": np.log10(ks), "rec_loss": [per_image[k].mean() for k in ks]})


def pca_image_losses(x_train: np.ndarray, x_test: np.ndarray, ks: Iterable[int], loss: str, *,
                     batch_size: int = 2048, fit: PcaFit | None = None) -> dict[int, np.ndarray]:
    """Each test image's loss (`image_losses`, float64, in the test split's order) under PCA with
    k components, for each k up to `max_components` (the others are left out); `pca_baseline`'s
    losses are their means. `fit`: as in `pca_baseline`."""
    train = np.asarray(x_train).reshape(len(x_train), -1)
    test = np.asarray(x_test).reshape(len(x_test), -1)
    if train.shape[1] != test.shape[1] or len(train) < 2 or len(test) < 1:
        raise MoncaeError(f"PCA baseline needs >= 2 training and >= 1 test images of one size. "
                          f"Received: train {train.shape}, test {test.shape}")
    max_k = max_components(len(train), train.shape[1])
    ks = sorted({int(k) for k in ks if 1 <= int(k) <= max_k})
    if not ks:
        return {}
    if fit is None or len(fit.components) < ks[-1]:
        fit = fit_pca(train, ks[-1])
    components, mean = fit.components, fit.mean
    clips = [EPSILON] * len(ks)
    if loss == "bce":
        rows = np.random.default_rng(0).permutation(len(train))[:CLIP_IMAGES]
        sample = train[np.sort(rows)].astype(np.float64)
        codes = (sample - mean) @ components[:ks[-1]].T
        clips = [fit_clip(sample, codes[:, :k] @ components[:k] + mean) for k in ks]
    losses = {k: np.empty(len(test)) for k in ks}
    for start in range(0, len(test), batch_size):
        x = test[start:start + batch_size].astype(np.float64)
        codes = (x - mean) @ components[:ks[-1]].T
        for k, clip in zip(ks, clips, strict=True):
            losses[k][start:start + len(x)] = image_losses(x, codes[:, :k] @ components[:k] + mean, loss, clip)
    return losses
