"""One command at a time per run folder: an OS file lock (`fcntl.flock`) on `RUN/.lock`.

The lock is held for the whole command (`search`, `finetune`); the kernel releases it when the
process ends, however it ends, so a lock can never go stale. The file records who holds it
(PID, host, command, start time) so that a second command can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from moncae.errors import RunFolderError
from moncae.store.atomic import remove_temporaries

__all__ = ["LOCK_NAME", "RunLock", "exclusive", "lock_holder"]

LOCK_NAME = ".lock"


def _holder_text(info: dict) -> str:
    if not info:
        return "another process"
    return (f"PID {info.get('pid', '?')} on {info.get('host', '?')} "
            f"({info.get('command', '?')}, since {info.get('started', '?')})")


def _read_info(path: Path) -> dict:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        text = os.read(fd, 4096).decode("utf-8") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
        info = json.loads(text or "{}")
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        os.close(fd)
    return info if isinstance(info, dict) else {}


def _open_lock_file(path: Path) -> int:
    """The lock file, opened for writing, never through a link: a `.lock` symlink in a run folder
    from elsewhere (a tarball, a shared drive) would make the lock truncate the file it names."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        path.unlink()  # a symlink: the lock file is moncae's own, made again as a plain file
        fd = os.open(path, flags, 0o644)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    raise RunFolderError(f"{path} is not a plain file (a lock file moncae did not make); remove it, then run "
                         "this again")


# A reader (`lock_holder`: report, front, export) holds a shared lock for microseconds; a command
# starting then waits this long for it rather than being refused in the name of an ended process.
READER_WAIT_SECONDS = 0.5


def _flock_soon(fd: int) -> None:
    """The exclusive lock on `fd`, tried again for READER_WAIT_SECONDS while it is held (OSError
    EWOULDBLOCK after that: someone holds it)."""
    deadline = time.monotonic() + READER_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class RunLock:
    """`with RunLock(run_dir, "search"):` holds the run folder's lock or raises at once."""

    def __init__(self, run_dir: str | os.PathLike, command: str) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open_lock_file(self.path)
        except OSError as err:  # a path through a file, no permission, a read-only file system
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # a passing cause: the CLI says so and keeps what is there
            raise RunFolderError(
                f"cannot write to {self.path.parent} ({err.strerror or err}); use a folder you can "
                "write to (search: --out DIR; a run folder from a read-only place: copy it first)"
            ) from None
        try:
            _flock_soon(fd)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise RunFolderError(f"cannot lock {self.path.parent} ({err})") from None
            raise RunFolderError(
                f"{self.path.parent} is in use by {_holder_text(_read_info(self.path))}; wait for it "
                "to finish (or stop it), then run this again"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "argv": " ".join(sys.argv[1:])[:300],
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        remove_temporaries(self.path.parent)  # a killed command's half-written files: no one writes now

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds the run folder's lock now (a description), or None if nobody does."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder_text(_read_info(path))
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """An OS lock (`flock`) on the file `path` (made if missing), waited for, held meanwhile: for
    what several commands write at once outside a run folder (a report's files, a cache)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock

