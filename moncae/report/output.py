"""Where a report is written: a hidden folder inside the output folder, whose files replace the
earlier report's at the end, so that a report stopped part way (Ctrl-C, an error, SIGKILL) leaves
the earlier one whole, and files of an earlier report that this one does not write (a group or a
strategy no longer in the results) do not stay behind beside it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from moncae.store.lock import exclusive
from moncae.store.staging import remove_leftovers, staging_folder

__all__ = ["REPORT_FILE", "staged_report"]

# The names a report writes (`build_report`); only such files of an earlier report are removed.
REPORT_FILE = re.compile(
    r"(report\.md|table1\.(csv|md)|runs\.csv|strategies\.(csv|md)"
    r"|(pca_baseline|versus_pca|baselines)_.+\.csv"
    r"|(pareto|hv_history|projections|reconstructions|samples|strategies)_.+\.png)")
STAGING_PREFIX = ".partial-report-"
LOCK_NAME = ".report.lock"


@contextlib.contextmanager
def staged_report(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder inside `out_dir` to write the report into. On leaving without an
    error, the new files are moved in, `report.md` last, and then the earlier report's files that
    the new one does not have are removed, under a lock that another report into `out_dir` waits
    for; on an error (or Ctrl-C) the folder is removed and `out_dir` is as it was."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_dir, STAGING_PREFIX)  # of reports killed by SIGKILL
    staging = staging_folder(out_dir, STAGING_PREFIX)
    try:
        yield staging
        new = sorted(p.name for p in staging.iterdir())
        with exclusive(out_dir / LOCK_NAME):  # two reports into one folder: one whole report, not a mix
            for name in sorted(new, key=lambda n: n == "report.md"):  # report.md last
                os.replace(staging / name, out_dir / name)
            for old in out_dir.iterdir():  # then the earlier report's files this one has not
                if old.is_file() and REPORT_FILE.fullmatch(old.name) and old.name not in new:
                    old.unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
