"""`moncae.report.pca` on tiny arrays: the loss as Keras defines it, which k are scored, and the
baseline against numpy's SVD (tests/test_report.py checks it on a real report, as a slow test)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moncae.report.pca import baseline_ks, max_components, pca_baseline, pixel_loss


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
    for k in (1, 3, 9):
        p = np.clip((x - mean) @ vt[:k].T @ vt[:k] + mean, 1e-7, 1 - 1e-7)
        expected.append(float(np.mean(-(x * np.log(p) + (1 - x) * np.log(1 - p)))))
    assert list(got["k"]) == [1, 3, 9]
    assert list(got["loc"]) == pytest.approx(np.log10([1, 3, 9]))
    assert list(got["rec_loss"]) == pytest.approx(expected, rel=1e-6)
    full = pca_baseline(train, test, [9], "mse")  # every direction: exact reconstruction
    assert full["rec_loss"].iloc[0] == pytest.approx(0.0, abs=1e-12)
