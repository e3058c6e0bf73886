"""Hidden staging folders for outputs that appear whole or not at all (a report, an export): each
is named after the process and the host that write it, so that a later command can remove the
ones a killed process (SIGKILL, a power cut) left behind on this host, and never one that is
still being written, here or by another host on a shared disk."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["remove_leftovers", "staging_folder"]


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process: alive
        return True
    return True


def staging_folder(parent: Path, marker: str, name: str = "") -> Path:
    """A new empty folder `parent/NAME MARKER PID-HOST-XXXXXXXX`, private to this user, e.g.
    `.knee.partial-export-4242-lab1-k3j2_x9a` (`mkdtemp`: never one that already exists)."""
    return Path(tempfile.mkdtemp(prefix=f"{name}{marker}{os.getpid()}-{_host()}-", dir=parent))


def remove_leftovers(parent: Path, marker: str) -> list[Path]:
    """Remove the staging folders in `parent` (made by `staging_folder` with `marker`) whose
    process has ended on this host; returns them. A folder of another host, of a process still
    running, or with a name this module did not give is left alone. Names without a host (written
    before hosts were part of them) count as this host's."""
    removed = []
    for path in parent.glob(f"*{marker}*"):
        pid, _, rest = path.name.rsplit(marker, 1)[1].partition("-")
        host = rest.rpartition("-")[0]  # the random part of mkdtemp's name has no '-'
        if (path.is_dir() and not path.is_symlink() and pid.isdigit() and int(pid) != os.getpid()
                and host in ("", _host()) and not _alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
