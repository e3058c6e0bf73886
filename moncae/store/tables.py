"""Reading a run's CSV tables (the writers are in `atomic`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["csv_float", "read_csv_rows"]


def csv_float(value: str | None) -> float:
    """A float cell of a run CSV; an empty cell is NaN."""
    return float(value) if value not in ("", None) else float("nan")


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """All rows of a CSV as dicts ([] if the file is absent)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
