"""Baseline fronts beside the evolved one: PCA (linear, `pca.py`) and, on request, a dense AE and
a dense VAE (the MNIST study's non-linear and variational references; `moncae.model.dense_baseline`
documents their architecture and training) at several latent sizes k, each scored on the test
split with the run's reconstruction loss (as PCA is: `pca.pixel_loss`) and plotted at
LOC = log10 k.

Latent sizes of the dense baselines: DENSE_SIZES, plus the runs' own latent sizes up to
MAX_RUN_LATENT values (and never more than the image's pixels). Trained dense baselines are
cached in `RESULTS/.baselines/DATASET.csv`, one row per (kind, k) keyed by everything that
decides its result (data fingerprint, losses, architecture and training constants, seed), so a
second `moncae report` trains nothing. PCA's test losses are cached there too (keyed by the data's
fingerprint, the loss and `PCA_VERSION`): its exact fit takes minutes on large images (441 s on
18,000 64x64x3 ones); so are its per-image test losses at the latent sizes of fine-tuned models
that kept theirs (`pca-KEY.npy`, for the paired comparison).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from moncae.errors import MoncaeError, RunFolderError
from moncae.method.dense_baselines import SETTINGS as TRAINING
from moncae.report.pca import PCA_COLUMNS, pixel_loss
from moncae.store.atomic import atomic_open
from moncae.store.journal import append_rows, read_rows
from moncae.store.lock import exclusive

__all__ = ["BASELINE_COLUMNS", "BASELINE_KINDS", "BASELINE_SEED", "CACHE_DIRNAME", "DEFAULT_BASELINES",
           "DENSE_SIZES", "MAX_RUN_LATENT", "PCA_VERSION", "cached_pca", "cached_pca_image_losses",
           "dense_baselines", "dense_sizes", "parse_baselines"]

BASELINE_KINDS = ("pca", "dense_ae", "dense_vae")
DEFAULT_BASELINES = ("pca",)
DENSE_SIZES = (2, 4, 8, 16, 32, 64)
MAX_RUN_LATENT = 1024
BASELINE_SEED = 0
CACHE_DIRNAME = ".baselines"
BASELINE_COLUMNS = ["kind", "k", "loc", "rec_loss", "kl", "epochs", "seconds"]
_CACHE_COLUMNS = ["key", *BASELINE_COLUMNS]
LABELS = {"pca": "PCA", "dense_ae": "dense AE", "dense_vae": "dense VAE"}
# part of a cached PCA row's key: raise it when what `pca.pca_baseline` computes changes
PCA_VERSION = 2  # 2: BCE reconstructions clipped at a value fitted on the training split


def parse_baselines(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`pca,dense_ae,dense_vae` (any subset, comma-separated; `none` for no baseline)."""
    if value is None:
        return DEFAULT_BASELINES
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in BASELINE_KINDS]
    if unknown or not names:
        raise MoncaeError(f"`baselines` must be names from {', '.join(BASELINE_KINDS)} (comma-"
                          f"separated) or none. Received: baselines={value!r}")
    return tuple(n for n in BASELINE_KINDS if n in names)


def dense_sizes(run_sizes: Iterable[int], n_pixels: int) -> list[int]:
    """DENSE_SIZES plus the runs' latent sizes up to MAX_RUN_LATENT, all <= the pixels."""
    sizes = set(DENSE_SIZES) | {int(s) for s in run_sizes if 1 <= int(s) <= MAX_RUN_LATENT}
    return sorted(s for s in sizes if s <= n_pixels)


def _key(kind: str, k: int, settings: dict) -> str:
    payload = {"kind": kind, "k": int(k), **settings, **TRAINING, "seed": BASELINE_SEED}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _cached_row(kind: str, k: int, r: dict | None) -> dict | None:
    """A cache row as a baseline row; None where there is none or it does not read as one (an
    edited file): that baseline is trained again, and its new row read from then on."""
    try:
        return {"kind": kind, "k": int(k), "loc": math.log10(k), "rec_loss": float(r["rec_loss"]),
                "kl": float(r["kl"] or "nan"), "epochs": int(r["epochs"]), "seconds": float(r["seconds"])}
    except (KeyError, TypeError, ValueError):
        return None


def _read_cache(cache: Path | None, what: str) -> dict:
    """Rows of `cache` by key (a torn last row, from a report killed mid-append, is left out and
    cut before the next append)."""
    try:
        return {} if cache is None else {r.get("key"): r for r in read_rows(cache, repair=True)}
    except RunFolderError as err:  # damaged in the middle (edited): only a cache
        raise MoncaeError(f"{err} (a cache of the {what}: delete it and they are computed again)") from None


def cached_pca(ks: Sequence[int], *, fingerprint: str, loss: str, cache: Path | None,
               compute: Callable[[list[int]], pd.DataFrame]) -> pd.DataFrame:
    """PCA_COLUMNS rows for each k in `ks`: from `cache`, the others from one `compute(missing)`
    (one fit; `pca.pca_baseline`), appended to it (`cache` None: nothing read or kept)."""
    if cache is None:
        return compute(sorted(ks))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(cache.with_name(cache.name + ".lock")):
        cached = _read_cache(cache, "baselines")
        settings = {"data": fingerprint, "loss": loss, "pca": PCA_VERSION}
        rows, missing = {}, []
        for k in sorted(ks):
            row = _cached_row("pca", k, cached.get(_key("pca", k, settings)))
            if row is None:
                missing.append(k)
            else:
                rows[k] = {c: row[c] for c in PCA_COLUMNS}
        if missing:
            fresh = compute(missing)
            for r in fresh.to_dict("records"):
                rows[int(r["k"])] = r
            append_rows(cache, _CACHE_COLUMNS, [
                {"key": _key("pca", int(r["k"]), settings), "kind": "pca", "k": int(r["k"]), "loc": r["loc"],
                 "rec_loss": r["rec_loss"], "kl": float("nan"), "epochs": 0, "seconds": 0.0}
                for r in fresh.to_dict("records")])
    return pd.DataFrame([rows[k] for k in sorted(rows)], columns=PCA_COLUMNS)


def cached_pca_image_losses(ks: Sequence[int], n_images: int, *, fingerprint: str, loss: str, cache: Path | None,
                            compute: Callable[[list[int]], dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """PCA's per-image test losses (`pca.pca_image_losses`) for each k in `ks`: from `cache`'s
    folder (`pca-KEY.npy`, KEY as `cached_pca`'s rows), the others from one `compute(missing)`,
    saved there (`cache` None: nothing read or kept). A file that is not `n_images` finite values
    (edited, torn) is computed again."""
    if cache is None:
        return compute(sorted(ks))
    cache.parent.mkdir(parents=True, exist_ok=True)
    settings = {"data": fingerprint, "loss": loss, "pca": PCA_VERSION}

    def path(k: int) -> Path:
        return cache.parent / f"pca-{_key('pca', k, settings)}.npy"

    with exclusive(cache.with_name(cache.name + ".lock")):
        losses, missing = {}, []
        for k in sorted(ks):
            try:
                found = np.load(path(k), allow_pickle=False)
            except (OSError, ValueError, EOFError):
                found = None
            usable = found is not None and found.dtype.kind == "f" and found.shape == (n_images,)
            if usable and np.isfinite(found).all():
                losses[k] = found.astype(np.float64)
            else:
                missing.append(k)
        if missing:
            for k, fresh in compute(missing).items():
                with atomic_open(path(k), "wb") as fh:
                    np.save(fh, np.asarray(fresh, dtype=np.float64), allow_pickle=False)
                losses[k] = fresh
    return losses


def dense_baselines(kinds: Sequence[str], sizes: Sequence[int], data, *, fingerprint: str, loss: str,
                    vae_loss: str, vae_eps: float, cache: Path | None,
                    log: Callable[[str], None] = lambda _t: None, train=None) -> pd.DataFrame:
    """BASELINE_COLUMNS rows for each dense kind in `kinds` and k in `sizes`: from `cache`, or
    trained now (and appended to it; `cache` None: nothing is read or kept). `data` has x_train,
    x_val, x_test; `loss` is the run's reconstruction loss (bce or mse), `vae_loss`/`vae_eps`
    what the dense VAE trains with. `train` (tests) replaces `moncae.model.dense_baseline.train_dense_baseline`."""
    kinds = [k for k in kinds if k != "pca"]
    if not kinds:
        return pd.DataFrame([], columns=BASELINE_COLUMNS)
    if cache is None:
        return _dense_baselines(kinds, sizes, data, fingerprint, loss, vae_loss, vae_eps, None, log, train)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # two reports at once: the second waits, then finds the first one's rows (trained once, each row once)
    with exclusive(cache.with_name(cache.name + ".lock")):
        return _dense_baselines(kinds, sizes, data, fingerprint, loss, vae_loss, vae_eps, cache, log, train)


def _dense_baselines(kinds: Sequence[str], sizes: Sequence[int], data, fingerprint: str, loss: str,
                     vae_loss: str, vae_eps: float, cache: Path | None, log: Callable[[str], None],
                     train) -> pd.DataFrame:
    rows: list[dict] = []
    cached = _read_cache(cache, "dense baselines")
    for kind in kinds:
        settings = {"data": fingerprint, "loss": loss}
        if kind == "dense_vae":
            settings.update(vae_loss=vae_loss, vae_eps=float(vae_eps))
        for k in sizes:
            key = _key(kind, k, settings)
            row = _cached_row(kind, k, cached.get(key))
            if row is not None:
                rows.append(row)
                continue
            if train is None:
                from moncae.model.dense_baseline import train_dense_baseline as train  # loads TF

            log(f"  {LABELS[kind]} k={k}: training")
            score = train(kind, k, data.x_train, data.x_val, data.x_test, loss=loss,
                                         vae_loss=vae_loss, vae_eps=vae_eps, seed=BASELINE_SEED)
            rec = float(pixel_loss(data.x_test, score.reconstructions, loss).mean())
            row = {"kind": kind, "k": int(k), "loc": math.log10(k), "rec_loss": rec, "kl": score.kl,
                   "epochs": score.epochs, "seconds": score.seconds}
            if cache is not None:
                append_rows(cache, _CACHE_COLUMNS, [{"key": key, **row}])
            rows.append(row)
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)
