"""`moncae.report.pca` on tiny arrays: the loss as Keras defines it, which k are scored, and the
baseline against numpy's SVD (tests/test_report.py checks it on a real report, as a slow test)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moncae.report.pca import CLIP_GRID, baseline_ks, fit_clip, max_components, pca_baseline, pixel_loss


def test_pixel_loss_clips_as_keras_does():
    assert pixel_loss(np.array([1.0]), np.array([0.0]), "bce")[0] == pytest.approx(-math.log(1e-7))
    assert np.isfinite(pixel_loss(np.array([0.0, 1.0]), np.array([1.0, 0.0]), "bce")).all()
    assert pixel_loss(np.array([0.5, 0.5]), np.array([1.5, -0.5]), "mse") == pytest.approx([0.25, 0.25])


def test_the_ks_and_the_largest_determined_pca():
    assert max_components(10, 784) == 9  # centring 10 images leaves rank 9
    assert max_components(1000, 16) == 16
    assert baseline_ks([3, 100], 16) == [1, 2, 3, 4, 8, 16]
    assert baseline_ks([], 12) == [1, 2, 4, 8, 12]


def test_pca_baseline_is_the_mean_per_pixel_loss_of_a_k_component_reconstruction():
    rng = np.random.default_rng(0)
    train = rng.random((40, 3, 3, 1))
    test = rng.random((7, 3, 3, 1))
    got = pca_baseline(train, test, [1, 3, 9], "bce")
    # independent reference: numpy's SVD of the centred training images
    flat, x = train.reshape(40, -1), test.reshape(7, -1)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    expected = []

    def bce(x, p, clip):
        p = np.clip(p, clip, 1 - clip)
        return float(np.mean(-(x * np.log(p) + (1 - x) * np.log(1 - p))))

    for k in (1, 3, 9):
        on_train, on_test = ((a - mean) @ vt[:k].T @ vt[:k] + mean for a in (flat, x))
        # the clip with the lowest BCE on the (40 < CLIP_IMAGES) training images, then on test
        clip = min(CLIP_GRID, key=lambda c: (bce(flat, on_train, c), CLIP_GRID.index(c)))  # noqa: B023
        expected.append(bce(x, on_test, clip))
    assert list(got["k"]) == [1, 3, 9]
    assert list(got["loc"]) == pytest.approx(np.log10([1, 3, 9]))
    assert list(got["rec_loss"]) == pytest.approx(expected, rel=1e-6)
    full = pca_baseline(train, test, [9], "mse")  # every direction: exact reconstruction
    assert full["rec_loss"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_the_clip_is_the_one_with_the_lowest_bce():
    half = np.full(10, 0.5)
    assert fit_clip(half, np.full(10, -1.0)) == max(CLIP_GRID)  # nearest 0.5 the grid goes: 0.2
    assert fit_clip(half, half) == min(CLIP_GRID) == 1e-7  # nothing to clip: Keras' eps
    x = np.array([0.0, 1.0, 0.0, 1.0])
    assert fit_clip(x, np.array([-0.2, 1.3, 0.1, 0.9])) == 1e-7  # every pixel on its side: the sharpest


def test_the_fitted_clip_never_scores_pca_worse_on_the_training_images():
    rng = np.random.default_rng(1)
    train = rng.random((60, 4, 4, 1)) ** 3  # skewed towards 0, as image pixels are
    for k in (1, 2, 4):
        fitted = pca_baseline(train, train, [k], "bce")["rec_loss"].iloc[0]
        flat = train.reshape(60, -1)
        mean = flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
        keras_eps = pixel_loss(flat, (flat - mean) @ vt[:k].T @ vt[:k] + mean, "bce").mean()
        assert fitted <= keras_eps + 1e-12


def test_per_image_losses_are_each_image_s_own_and_average_to_the_baseline():
    from moncae.report.pca import pca_image_losses

    rng = np.random.default_rng(1)
    train, test = rng.random((40, 3, 3, 1)), rng.random((7, 3, 3, 1))
    per_image = pca_image_losses(train, test, [1, 3, 99], "bce", batch_size=3)  # batches cut mid-split
    assert sorted(per_image) == [1, 3]  # 99 > the 39 components determined
    baseline = pca_baseline(train, test, [1, 3], "bce").set_index("k")["rec_loss"]
    for k, losses in per_image.items():
        assert losses.shape == (7,) and losses.mean() == pytest.approx(baseline[k], rel=1e-12)
        # image 4 alone, against the whole split: its own loss, not a share of the split's
        alone = pca_baseline(train, test[4:5], [k], "bce")["rec_loss"].iloc[0]
        assert losses[4] != pytest.approx(losses.mean()) and losses[4] == pytest.approx(alone, rel=1e-12)
