"""One fine-tune as a task an executor runs: in this process, or in a worker process that loads
the run's data by name and sends back the record, the model's bytes and its test losses (the
driver writes every file). No TensorFlow until a task runs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from moncae.config import SearchConfig
from moncae.finetune.records import FinalModel, FinetuneOutput, FinetuneSettings, failed_finetune

__all__ = ["FinetuneTask", "lost_finetune", "run_finetune_task"]


@dataclass(frozen=True)
class FinetuneTask:
    model: FinalModel
    config: SearchConfig  # the run's settings (its `data_spec()` names the data)
    settings: FinetuneSettings
    input_shape: tuple[int, ...]
    cost: float = 0.0  # one image's forward-pass FLOPs: an executor starts the costliest first
    fingerprint: str | None = None  # the run's data: a file changed since is refused, not trained on


def run_finetune_task(task: FinetuneTask) -> FinetuneOutput:
    """Fine-tune and measure `task.model`: its record and, when ok, its `.keras` bytes and test
    losses per image."""
    from moncae.data import cached_dataset
    from moncae.finetune.model import finetune_model  # loads TensorFlow
    from moncae.model.training import float32_keras

    with float32_keras():  # a notebook's dtype policy neither changes the numbers nor is lost
        spec = replace(task.config.data_spec(), fingerprint=task.fingerprint)
        return finetune_model(task.model, cached_dataset(spec), task.config, task.settings)


def lost_finetune(task: FinetuneTask, error: str) -> FinetuneOutput:
    """The failed record of a fine-tune whose worker process kept dying (a rerun tries it again)."""
    return FinetuneOutput(failed_finetune(task.model, task.input_shape, error, "lost"))
