"""`moncae.store.atomic` and the journal's appends: whole files or none, and every write made
durable with fsync (of the file, and of its folder after a rename). `make test-fast` turns
`os.fsync` into a no-op for speed (MONCAE_TEST_NO_FSYNC, tests/conftest.py): these tests look
at the calls, not at the disk, so they hold either way."""

from __future__ import annotations

import math
import os
import stat

import pytest

from moncae.errors import RunFolderError
from moncae.store import atomic, journal


@pytest.fixture
def fsyncs(monkeypatch):
    """The kind (file or folder) of every fd passed to os.fsync, in order."""
    seen: list[str] = []

    def spy(fd: int) -> None:
        seen.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_an_atomic_write_fsyncs_the_file_then_its_folder(tmp_path, fsyncs):
    atomic.write_json(tmp_path / "a.json", {"x": 1})
    assert fsyncs == ["file", "folder"]
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 1\n}\n'


def test_a_journal_append_fsyncs_its_rows(tmp_path, fsyncs):
    journal.append_rows(tmp_path / "j.csv", ["a", "b"], [{"a": 1, "b": 2}])  # new: written whole
    journal.append_rows(tmp_path / "j.csv", ["a", "b"], [{"a": 3, "b": 4}])  # then appended
    assert fsyncs == ["file", "folder", "file"]
    assert (tmp_path / "j.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_atomic_write_replaces_the_file_by_a_rename_never_rewrites_it_in_place(tmp_path):
    path = tmp_path / "a.csv"
    atomic.write_text(path, "old\n")
    with open(path, encoding="utf-8") as reader:  # a reader of the old file (e.g. a report) keeps it whole
        inode = os.stat(path).st_ino
        atomic.write_text(path, "new, longer\n")
        assert os.stat(path).st_ino != inode
        assert reader.read() == "old\n"
    assert path.read_text() == "new, longer\n"


def test_atomic_outputs_get_the_umasks_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644


def test_write_json_refuses_nan_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "a.json", {"x": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_a_torn_header_is_cut_away_and_the_next_append_starts_the_file_afresh(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("a,b")  # killed while writing the header (an older moncae's plain write)
    assert journal.read_rows(path, ["a", "b"], repair=True) == []
    assert path.read_bytes() == b""
    journal.append_rows(path, ["a", "b"], [{"a": 1, "b": 2}])
    assert journal.read_rows(path, ["a", "b"]) == [{"a": "1", "b": "2"}]


def test_an_append_to_an_empty_journal_writes_the_header_first(tmp_path):
    path = tmp_path / "j.csv"
    path.touch()
    journal.append_rows(path, ["a", "b"], [{"a": 1, "b": 2}])
    assert path.read_text().splitlines() == ["a,b", "1,2"]


def test_a_journal_with_other_columns_is_refused_not_misread(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("b,a\n1,2\n")
    with pytest.raises(RunFolderError, match="expected the columns a,b"):
        journal.read_rows(path, ["a", "b"])
