"""`moncae report`: Table 1, Pareto fronts with a PCA baseline, hypervolume history and
reconstructions over every run under a results folder.

Modules: `collect` (run folders -> pandas), `table1`, `pca` (the linear baseline), `plots`
(matplotlib), `reconstructions` (the only Keras use, loaded when drawn), `markdown`, `build`.
Importing this package loads no TensorFlow.
"""

from moncae.report.build import build_report
from moncae.report.collect import ReportWarning
from moncae.report.table1 import DEFAULT_LOC_THRESHOLDS, TABLE1_COLUMNS

__all__ = ["DEFAULT_LOC_THRESHOLDS", "TABLE1_COLUMNS", "ReportWarning", "build_report"]
