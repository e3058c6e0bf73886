"""A Ctrl-C (or SIGTERM) held until a safe point while a training runs in this process.

Python runs a signal handler between two bytecodes, wherever the main thread is. The default
SIGINT handler raises `KeyboardInterrupt` there, and inside TensorFlow and Keras that is not
always a clean stop: raised in a garbage-collection or weakref callback (e.g. during
`clear_session`) CPython prints "Exception ignored" and goes on; raised inside a C call it can
come back as another exception (a `SystemError`, a `TypeError`), which a training records as its
own failure. So a training in the command's own process (`--workers 1`) runs inside
`held_signals()`: a first Ctrl-C or SIGTERM is only noted, and acted on (the handler that was in
place runs: `KeyboardInterrupt`, or the CLI's `Terminated`) at the next `check_signals()` (after
every batch) or when the block ends. A second one acts at once, as before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["check_signals", "held_signals"]

HELD = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_pending: list[tuple[int, Callable]] = []  # the signal noted and the handler it would have run


def check_signals() -> None:
    """A safe point: act on a signal that came while held (nothing to do otherwise)."""
    if _pending:
        signum, handler = _pending.pop()
        _pending.clear()
        handler(signum, None)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Within the block, a first SIGINT or SIGTERM waits for `check_signals()` or the block's end
    (only where Python handles that signal, and only in the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HELD}
    held = {s: h for s, h in previous.items() if callable(h)}

    def note(signum, frame):
        if _pending:  # a second one: at once
            check_signals()
        _pending.append((signum, held[signum]))

    for signum in held:
        signal.signal(signum, note)
    try:
        yield
    finally:  # a signal noted is acted on even when the block raised (it asked to stop)
        for signum in held:
            signal.signal(signum, previous[signum])
        check_signals()
