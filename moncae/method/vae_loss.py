"""The VAE losses as plain NumPy: the definitions `moncae.model.vae` implements in Keras ops
(tests compare the two on fixed tensors). All values are per image, then averaged over the batch.

Notation: an image x and its decoding x' with N = H*W*C pixel values in [0, 1]; the encoder's
posterior q(z|x) = N(mu, diag(exp(log_var))) over J latent values (the AE bottleneck's
shape: J = h*w*c for a conv bottleneck, or the dense latent gene's size).

- `kl_prior`: KL(q(z|x) || N(0, I)) per latent dimension, i.e. divided by J:
      (1/J) * sum_j 0.5 * (mu_j^2 + exp(log_var_j) - 1 - log_var_j)
- `bce`: the per-pixel binary cross-entropy (Keras' BinaryCrossentropy, probabilities clipped
  to [BCE_EPSILON, 1 - BCE_EPSILON]): (1/N) * sum_i -(x_i log x'_i + (1 - x_i) log(1 - x'_i)).
- `elbo` (the thesis's vanilla loss, eq. 7.13, with both terms per dimension):
      bce(x, x') + kl_prior(mu, log_var)
  The exact negative ELBO per pixel would be bce + (J/N) * sum-KL/J; this is the same loss
  with the prior term weighted N/J times more (a beta-VAE with beta = N/J), the normalisation
  the thesis uses for both of its losses.
- `reformulated` (the thesis's eq. 8.1): the reconstruction term becomes the KL divergence of
  the pixel-wise difference d = x - x' from N(0, eps^2). The N differences of an image are
  summarised by their Gaussian fit N(m, s^2) (m the mean, s^2 the variance over the pixels);
  the N-dimensional KL of N(m 1, s^2 I) from N(0, eps^2 I), divided by N (the thesis scales it
  by the input's dimensionality), is the 1-D one:
      KL_rec = log(eps) - 0.5 * log(s^2 + VARIANCE_FLOOR) + mean(d^2) / (2 eps^2) - 0.5
  (m^2 + s^2 = mean(d^2), computed directly: no cancellation), then
      reformulated = KL_rec + kl_prior(mu, log_var).
  eps (`vae_eps`, default 0.01 as in the thesis) is a setting. VARIANCE_FLOOR keeps the log
  finite for a perfect (or constant-offset) reconstruction.

The search's reconstruction objective for a VAE is always `bce` of the *mean* decoding (z = mu),
so AE and VAE fronts are on one scale.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BCE_EPSILON", "DEFAULT_VAE_EPS", "LOG_VAR_LIMIT", "VAE_LOSSES", "VARIANCE_FLOOR", "bce",
           "kl_prior", "reformulated_reconstruction", "vae_loss"]

VAE_LOSSES = ("elbo", "reformulated")
DEFAULT_VAE_EPS = 0.01  # the thesis: "always set to 0.01"
BCE_EPSILON = 1e-7  # keras.config.epsilon(): how Keras clips probabilities in its BCE
VARIANCE_FLOOR = 1e-12
LOG_VAR_LIMIT = 20.0  # the model clips log-variances to [-20, 20] so exp() never overflows


def _per_image(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def kl_prior(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, exp(log_var)) || N(0, I)) per image, divided by the latent dimensionality J."""
    mu, log_var = _per_image(mu), _per_image(log_var)
    return np.mean(0.5 * (np.square(mu) + np.exp(log_var) - 1.0 - log_var), axis=1)


def bce(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Per-pixel binary cross-entropy per image (Keras' clipping)."""
    x, p = _per_image(x), np.clip(_per_image(x_hat), BCE_EPSILON, 1.0 - BCE_EPSILON)
    return np.mean(-(x * np.log(p) + (1.0 - x) * np.log(1.0 - p)), axis=1)


def reformulated_reconstruction(x: np.ndarray, x_hat: np.ndarray, eps: float = DEFAULT_VAE_EPS
                                ) -> np.ndarray:
    """KL of the pixel differences' Gaussian fit from N(0, eps^2), per image (see the module)."""
    d = _per_image(x) - _per_image(x_hat)
    mean_sq = np.mean(np.square(d), axis=1)
    var = np.mean(np.square(d - d.mean(axis=1, keepdims=True)), axis=1)
    return np.log(eps) - 0.5 * np.log(var + VARIANCE_FLOOR) + mean_sq / (2.0 * eps**2) - 0.5


def vae_loss(name: str, x: np.ndarray, x_hat: np.ndarray, mu: np.ndarray, log_var: np.ndarray,
             eps: float = DEFAULT_VAE_EPS) -> float:
    """The batch mean of loss `name` ("elbo" or "reformulated")."""
    if name == "elbo":
        rec = bce(x, x_hat)
    elif name == "reformulated":
        rec = reformulated_reconstruction(x, x_hat, eps)
    else:
        raise ValueError(f"unknown VAE loss {name!r}; use one of {', '.join(VAE_LOSSES)}")
    return float(np.mean(rec + kl_prior(mu, log_var)))
