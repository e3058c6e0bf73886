"""Shared test setup: quiet TensorFlow, offline data from ../shared/datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if SHARED_DATA.is_dir():
    os.environ.setdefault("MONCAE_DATA_DIR", str(SHARED_DATA))
