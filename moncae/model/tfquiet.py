"""Import TensorFlow without its C++ start-up chatter (CUDA probes, oneDNN notices).

TF 2.21 prints those before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide
them; we park file descriptor 2 while importing and replay it if the import fails.
Set MONCAE_TF_VERBOSE=1 to see everything.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import TensorFlow once, hiding its C++ start-up logs (TF_CPP_MIN_LOG_LEVEL 3 by default)."""
    if "tensorflow" in sys.modules or os.environ.get("MONCAE_TF_VERBOSE"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # set it to 0 to see TF's C++ logs
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): import as usual
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")  # the CUDA probe logs here, once
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
