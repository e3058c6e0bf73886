"""The run folder on disk: atomic writes, the CSV journals and tables, the checkpoint, saved
models. Data only, no TensorFlow: reading a run never loads it."""

from moncae.store.atomic import append_csv_rows, atomic_open, write_csv, write_json, write_text
from moncae.store.checkpoint import Checkpoint
from moncae.store.run_folder import (
    FRONT_COLUMNS,
    GENERATION_COLUMNS,
    MODEL_INDEX_COLUMNS,
    POPULATION_COLUMNS,
    RunFolder,
    model_filename,
)
from moncae.store.tables import csv_float, read_csv_rows

__all__ = ["FRONT_COLUMNS", "GENERATION_COLUMNS", "MODEL_INDEX_COLUMNS", "POPULATION_COLUMNS",
           "Checkpoint", "RunFolder", "append_csv_rows", "atomic_open", "csv_float", "model_filename",
           "read_csv_rows", "write_csv", "write_json", "write_text"]
