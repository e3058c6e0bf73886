"""Datasets by name or `.npz` path, found offline first, split reproducibly.

See `core.load_dataset` for the split rules and `locate` for where files are looked for.
"""

from moncae.data.core import (
    DATASET_NAMES,
    Dataset,
    DatasetStatus,
    canonical_name,
    dataset_status,
    load_dataset,
    looks_like_file,
)
from moncae.data.spec import DataSpec, cached_dataset

__all__ = ["DATASET_NAMES", "DataSpec", "Dataset", "DatasetStatus", "cached_dataset", "canonical_name",
           "dataset_status", "load_dataset", "looks_like_file"]
