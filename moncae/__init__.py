"""moncae: multi-objective neuroevolution of convolutional autoencoders (MONCAE).

The public API; Keras/TensorFlow are imported only when a function that needs them runs, so
`moncae --help` and the pure modules stay fast.
"""

from __future__ import annotations

import importlib

from moncae._version import __version__

_EXPORTS = {
    "load_dataset": "moncae.data",
    "Genome": "moncae.method.genome",
    "GenomeSpace": "moncae.method.genome",
    "SearchConfig": "moncae.config",
    "resolve_config": "moncae.config",
    "run_search": "moncae.search.loop",
    "RunResult": "moncae.search.loop",
    "SearchProgress": "moncae.search.loop",
    "run_side_by_side": "moncae.search.side_by_side",
    "SeedOutcome": "moncae.search.side_by_side",
    "default_executor": "moncae.search",
    "finetune_run": "moncae.finetune",
    "FinetuneProgress": "moncae.finetune.records",
    "build_report": "moncae.report",
    "load_front": "moncae.export",
    "load_model": "moncae.export",
    "export_model": "moncae.export",
    "read_run_config": "moncae.finetune.run",
    "MoncaeError": "moncae.errors",
    "DataError": "moncae.errors",
    "RunFolderError": "moncae.errors",
    "MoncaeWarning": "moncae.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'moncae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
