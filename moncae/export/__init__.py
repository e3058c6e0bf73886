"""Use a finished run's models: its Pareto front as a table (`front`: pandas, no TensorFlow), the
choice of one model (`select`, no TensorFlow) and its export as ready-to-use encoder / decoder /
autoencoder files (`export`, `models`: Keras). Names load their module when first used, so
`import moncae.export` is cheap and loads neither pandas nor TensorFlow."""

from __future__ import annotations

import importlib

KNEE_HELP = ("the front's knee: objectives normalised to [0, 1] over the front, the point farthest "
             "from the straight line joining its two extremes (lowest loss, lowest LOC), on the side of "
             "low loss and LOC; with fewer than three points, or none on that side, the one with the "
             "lowest loss")

_EXPORTS = {
    "FRONT_TABLE_COLUMNS": "moncae.export.front",
    "format_front": "moncae.export.front",
    "load_front": "moncae.export.front",
    "read_run_models": "moncae.export.front",
    "Choice": "moncae.export.select",
    "choose": "moncae.export.select",
    "knee_distances": "moncae.export.select",
    "ExportResult": "moncae.export.export",
    "export_model": "moncae.export.export",
    "load_model": "moncae.export.models",
}
__all__ = ["KNEE_HELP", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'moncae.export' has no attribute {name!r}")
