"""`moncae.store.atomic` and the journal's appends: whole files or none, and every write made
durable with fsync (of the file, and of its folder after a rename). `make test-fast` turns
`os.fsync` into a no-op for speed (MONCAE_TEST_NO_FSYNC, tests/conftest.py): these tests look
at the calls, not at the disk, so they hold either way."""

from __future__ import annotations

import os
import stat

import pytest

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
