"""The run folder on disk: atomic writes, the CSV journals and tables, the checkpoint, saved
models. Data only, no TensorFlow: reading a run never loads it."""

from moncae.store.atomic import atomic_open, write_csv, write_json, write_text
from moncae.store.checkpoint import Checkpoint
from moncae.store.journal import append_rows, read_rows, rewrite_rows
from moncae.store.lock import RunLock, lock_holder
from moncae.store.run_folder import (
    FRONT_COLUMNS,
    GENERATION_COLUMNS,
    MODEL_INDEX_COLUMNS,
    POPULATION_COLUMNS,
    RUN_FOLDER_HINT,
    RunFolder,
    check_writable_folder,
    data_record,
    image_losses_filename,
    model_filename,
)
from moncae.store.tables import csv_float, read_csv_rows

__all__ = ["FRONT_COLUMNS", "GENERATION_COLUMNS", "MODEL_INDEX_COLUMNS", "POPULATION_COLUMNS",
           "RUN_FOLDER_HINT", "Checkpoint", "RunFolder", "RunLock", "append_rows", "atomic_open",
           "check_writable_folder", "csv_float", "data_record", "image_losses_filename", "lock_holder",
           "model_filename", "read_csv_rows", "read_rows", "rewrite_rows", "write_csv", "write_json", "write_text"]
