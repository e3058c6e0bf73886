"""Append-only CSV journals that survive a crash mid-write.

An append writes whole rows with one `write`, then flushes and fsyncs: O(1) per row, however
long the run. A crash can still leave a torn last line (cut mid-row, no final newline). Reading
a journal finds that: a last line without its newline, or with the wrong number of fields, is
dropped with a warning naming the file and line, and the file is cut back to its last whole row
before anything is appended again (so a new row is never glued onto a torn one). Damage
anywhere else is not a tear: it is an error naming the file and line, never guessed around.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from moncae.errors import RunFolderError, RunFolderWarning
from moncae.store.atomic import write_csv

__all__ = ["append_rows", "read_rows", "rewrite_rows"]


def _format(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def _cells(line: str) -> list[str] | None:
    """One CSV line's cells; None when it is not one whole CSV record (e.g. an open quote)."""
    try:
        reader = csv.reader([line], strict=True)
        cells = next(reader, [])
        return cells if next(reader, None) is None else None
    except csv.Error:
        return None


def _whole_rows(path: Path, data: bytes) -> tuple[int, list[list[str]], list[str]]:
    """(bytes of the good prefix, parsed rows, header) of a journal's content."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is not a text CSV (undecodable bytes); it is damaged: "
                             "restore it from a copy or start a new run") from None
    lines = text.splitlines(keepends=True)  # journals never hold a newline inside a cell
    if not lines:
        return 0, [], []
    parsed = [_cells(line) for line in lines]
    header = parsed[0] or []
    if not lines[0].endswith("\n"):
        return 0, [], []  # torn header: as if nothing was written
    good, rows = len(lines[0].encode()), []
    for number, (line, cells) in enumerate(zip(lines[1:], parsed[1:]), start=2):
        torn = not line.endswith("\n") or cells is None or len(cells) != len(header)
        if torn and number == len(lines):
            warnings.warn(f"{path}:{number}: torn last line left out (an interrupted write)",
                          RunFolderWarning, stacklevel=4)
            break
        if torn:
            found = "an unreadable line" if cells is None else f"{len(cells)}"
            raise RunFolderError(f"{path}:{number}: expected {len(header)} fields, found {found}; "
                                 "the file is damaged in the middle, not torn")
        good += len(line.encode())
        rows.append(cells)
    return good, rows, header


def _expected(columns: Sequence[str], header: Sequence[str], optional: Iterable[str]) -> list[str]:
    """`columns` less the `optional` ones the header lacks (columns added since an older moncae
    wrote the file: its rows simply have no value for them)."""
    optional = set(optional)
    return [c for c in columns if c in header or c not in optional]


def read_rows(path: str | os.PathLike, columns: Sequence[str] | None = None, *,
              repair: bool = False, optional: Iterable[str] = ()) -> list[dict[str, str]]:
    """The whole rows of a journal as dicts ([] if absent); a torn last line is dropped.

    With `columns`, the header must start with them (any of `optional` may be missing: a journal
    an older moncae wrote). With `repair` (only while holding the run folder's lock), the file is
    also cut back to its whole rows.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    good, rows, header = _whole_rows(path, data)
    expected = [] if columns is None else _expected(columns, header, optional)
    if columns is not None and header and header[: len(expected)] != expected:
        raise RunFolderError(f"{path}:1: expected the columns {','.join(expected)}; found "
                             f"{','.join(header[:len(expected)])}. It was not written by this moncae")
    if repair and good < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good)
            fh.flush()
            os.fsync(fh.fileno())
    return [dict(zip(header, cells)) for cells in rows]


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return _cells(fh.readline()) or []


def append_rows(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *,
                optional: Iterable[str] = ()) -> None:
    """Append whole rows (header first when the file is new), flushed and fsynced. A journal an
    older moncae started, without some of the `optional` columns, keeps its own header: the new
    rows leave those columns out."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        write_csv(path, columns, rows)  # atomic: the header never tears
        return
    optional = tuple(optional)
    if optional:
        header = _header(path)
        if header != list(columns) and header == _expected(columns, header, optional):
            columns = header
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(_format(columns, rows))
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_rows(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace a journal's rows atomically (to drop rows: unfinished generations, retries)."""
    write_csv(path, columns, rows)
