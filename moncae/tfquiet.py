"""Import TensorFlow without its C++ start-up chatter (CUDA probes, oneDNN notices), and without
the optional libraries Keras would load alongside it.

TF 2.21 prints those before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide
them; we park file descriptor 2 while importing and replay it if the import fails.
Set MONCAE_TF_VERBOSE=1 to see everything.

Keras 3 imports pandas, scikit-learn (and with it SciPy) and matplotlib whenever they are
installed (for DataFrame inputs, its scikit-learn wrappers and image plots, none of which moncae
uses); with moncae's dependencies they are, and they were ~1.5 s of a ~4.2 s import in every
worker process. In a process that only trains moncae's models (the local executor's workers call
`hold_off_keras_extras` first), those not loaded yet are held off while TensorFlow and Keras
load, so Keras takes them for absent; a later `import pandas` there still loads as usual. Other
processes (the driver, a notebook, a Dask worker) import TensorFlow as they would anyway.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

KERAS_EXTRAS = ("pandas", "sklearn", "scipy", "matplotlib")  # optional for Keras, unused by moncae's Keras
_hold_off = False  # set in worker processes by `hold_off_keras_extras`


def hold_off_keras_extras() -> None:
    """From now on in this process, TensorFlow and Keras load without `KERAS_EXTRAS`: for a
    process that only trains moncae's models (Keras then takes DataFrames for plain objects and
    has no scikit-learn wrappers or plots, which moncae never uses)."""
    global _hold_off
    _hold_off = True


@contextlib.contextmanager
def holding_off(names: tuple[str, ...]) -> Iterator[None]:
    """Within the block, `import NAME` (and its submodules) raises ImportError for each of
    `names` not imported yet (a None entry in `sys.modules`); afterwards they import as usual."""
    held = [name for name in names if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in held:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def _stderr_parked() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file within the block, replayed if the block raises an
    error, not when a Ctrl-C or SIGTERM stops it (nothing is parked where there is no real fd 2,
    e.g. an embedded interpreter)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except Exception:  # what TensorFlow said may explain it; a stop is no failure of the import
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras) once, hiding its C++ start-up logs (TF_CPP_MIN_LOG_LEVEL 3
    by default); without `KERAS_EXTRAS` after `hold_off_keras_extras`."""
    if "tensorflow" in sys.modules or os.environ.get("MONCAE_TF_VERBOSE"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # set it to 0 to see TF's C++ logs
    with holding_off(KERAS_EXTRAS if _hold_off else ()), _stderr_parked():
        import keras  # noqa: F401 - Keras too: its optional imports are held off with TensorFlow's
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs here, once
