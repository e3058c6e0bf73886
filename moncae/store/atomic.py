"""Atomic file writes (temp file in the same folder + fsync + rename).

A crash mid-write leaves either the old file or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on clean exit fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a whole CSV atomically (header + rows); missing keys become empty cells."""
    with atomic_open(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def append_csv_rows(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows to a CSV atomically: the file is rewritten whole via temp + rename.

    The CSVs of a run stay small (hundreds of rows), so rewriting costs microseconds and a
    crash can never leave a half-written last line.
    """
    path = Path(path)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_open(path, "w") as fh:
        if existing:
            fh.write(existing)
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        if not existing:
            writer.writeheader()
        for row in rows:
            writer.writerow(row)
