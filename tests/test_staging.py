"""`moncae.store.staging`: the hidden folders a report or an export is written into, and which of
them a later command removes (those of a process killed on this host, and no other)."""

from __future__ import annotations

import os
import subprocess
import sys

from moncae.store.staging import _host, remove_leftovers, staging_folder

MARK = ".partial-x-"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_staging_folder_names_its_process_and_host_and_is_new(tmp_path):
    one, two = staging_folder(tmp_path, MARK, name=".out"), staging_folder(tmp_path, MARK, name=".out")
    assert one != two and one.is_dir() and not any(one.iterdir())
    assert one.name.startswith(f".out{MARK}{os.getpid()}-{_host()}-")


def test_only_folders_of_ended_processes_on_this_host_are_removed(tmp_path):
    dead, host = dead_pid(), _host()
    names = {
        f".a{MARK}{dead}-{host}-k2j_3": False,  # killed here: removed
        f"{MARK}{dead}-q9x1": False,  # written before hosts were in the name: this host's
        f".a{MARK}{dead}-other.host-k2j_3": True,  # another host's on a shared disk: maybe running
        f".a{MARK}{os.getppid()}-{host}-k2j_3": True,  # a process still running
        f".a{MARK}{os.getpid()}-{host}-k2j_3": True,  # this one's own
        f".a{MARK}notapid-{host}-k2j_3": True,  # not a name this module gives
        ".a.partial-other-1-x": True,  # another marker
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")
    (tmp_path / f".b{MARK}{dead}-{host}-zz").write_text("a file, not a folder")
    removed = remove_leftovers(tmp_path, MARK)
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [n for n, kept in names.items() if kept] + [f".b{MARK}{dead}-{host}-zz"])
