"""Preloaded by each worker process of a LocalCluster moncae starts (Dask's `preload`): Ctrl-C
in a terminal reaches the whole process group, and stopping is the driver's to do (it closes the
cluster); a worker left to Python's default handler printed two tracebacks per worker first."""

from __future__ import annotations

import signal


def dask_setup(worker) -> None:  # noqa: ARG001 - Dask's preload hook
    signal.signal(signal.SIGINT, signal.SIG_IGN)
