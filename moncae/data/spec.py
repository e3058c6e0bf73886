"""`DataSpec`: how any process (driver or Dask worker) loads a run's data by itself, by name.

Arrays are never shipped with a task: a task carries a `DataSpec` and each process loads the
dataset once (`cached_dataset`) and reuses it for every task.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from moncae.data.core import Dataset, file_signature, load_dataset
from moncae.errors import DataError


@dataclass(frozen=True)
class DataSpec:
    """A dataset by name (or `.npz` path) and the split settings that make a run's splits."""

    name: str
    data_dir: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    split_seed: int = 0
    # the data a run recorded (config.json's fingerprint): other data is refused, not trained on
    fingerprint: str | None = None


def cached_dataset(spec: DataSpec) -> Dataset:
    """Load the dataset of `spec` once per process and reuse it (a dataset file is read again
    once it changed: its size and modification time are part of the key). With a `fingerprint`,
    data that no longer has it (a file rewritten while a run goes on) raises `DataError`."""
    data = _cached_dataset(replace(spec, fingerprint=None), file_signature(spec.name))
    if spec.fingerprint is not None and data.fingerprint != spec.fingerprint:
        raise DataError(f"the dataset {spec.name} changed while the run went on (fingerprint "
                        f"{spec.fingerprint} -> {data.fingerprint}); put the file it started with back, "
                        "then run the same command again (search: with --resume)")
    return data


@functools.lru_cache(maxsize=2)
def _cached_dataset(spec: DataSpec, signature: tuple | None) -> Dataset:
    return load_dataset(
        spec.name, data_dir=spec.data_dir, train_size=spec.train_size, val_size=spec.val_size,
        test_size=spec.test_size, seed=spec.split_seed,
    )
