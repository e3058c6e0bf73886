"""The paper's second stage on a finished search run: fine-tune the final population, measure it
on the test split, and score its latent codes (`run.finetune_run`; Keras only in `model`)."""

from moncae.finetune.records import (
    FINETUNE_COLUMNS,
    FinalModel,
    FinetuneProgress,
    FinetuneRecord,
    FinetuneResult,
    FinetuneSettings,
)
from moncae.finetune.run import (
    check_finetune,
    check_finished,
    check_run,
    final_models,
    finetune_executor,
    finetune_run,
)

__all__ = ["FINETUNE_COLUMNS", "FinalModel", "FinetuneProgress", "FinetuneRecord", "FinetuneResult",
           "FinetuneSettings", "check_finetune", "check_finished", "check_run", "final_models",
           "finetune_executor", "finetune_run"]
