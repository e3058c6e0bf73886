"""`moncae.method.image_loss`: per-image losses and the paired difference, by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from moncae.method.image_loss import Z95, image_losses, paired_difference, pixel_loss


def test_image_losses_are_each_image_s_mean_over_its_pixels_and_channels():
    x = np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]])  # 2 images of 2x2
    x_hat = np.array([[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]])
    assert image_losses(x, x_hat, "mse") == pytest.approx([0.25, 0.0])
    assert image_losses(x, x_hat, "bce") == pytest.approx([math.log(2), math.log(2)])
    assert image_losses(x, x_hat, "bce").mean() == pytest.approx(pixel_loss(x, x_hat, "bce").mean())


def test_the_paired_difference_is_the_mean_and_standard_error_of_the_per_image_differences():
    a, b = np.array([0.30, 0.10, 0.52, 0.20]), np.array([0.31, 0.12, 0.50, 0.23])
    d = [-0.01, -0.02, 0.02, -0.03]
    mean = sum(d) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / 3)
    pair = paired_difference(a, b)
    assert (pair.mean, pair.se, pair.n) == (pytest.approx(mean), pytest.approx(sd / 2), 4)
    assert (pair.low, pair.high) == (pytest.approx(mean - Z95 * sd / 2), pytest.approx(mean + Z95 * sd / 2))
    assert not pair.clear  # -0.01 +- 0.03: holds 0
    assert Z95 == pytest.approx(1.959964, abs=1e-6)


def test_a_steady_lead_is_clear_where_the_same_lead_over_varying_images_is_not():
    rng = np.random.default_rng(0)
    hard = rng.uniform(0.05, 0.6, 2000)  # images differ far more than the coders do on one image
    steady = paired_difference(hard - 0.002 + rng.normal(0, 0.005, 2000), hard)
    assert steady.clear and steady.high < 0
    noisy = paired_difference(hard - 0.002 + rng.normal(0, 0.1, 2000), hard)
    assert not noisy.clear
    # the paired error is far below the unpaired one (each mean's own error, combined)
    unpaired = math.sqrt(2) * hard.std(ddof=1) / math.sqrt(2000)
    assert steady.se < unpaired / 10


def test_paired_difference_needs_as_many_images_on_each_side():
    with pytest.raises(ValueError, match="as many images"):
        paired_difference(np.ones(3), np.ones(4))
    assert math.isnan(paired_difference(np.ones(1), np.zeros(1)).se)
