"""A cheap, deterministic stand-in for training: objectives computed from the genome alone.

`surrogate_task` has the contract of `moncae.evaluation.train.run_task` (an `EvalTask` in, an
`EvalResult` out) but trains nothing and imports no TensorFlow: LOC is the genome's exact level
of compression, and the reconstruction loss a fixed smooth function of its architecture (less
latent space, sigmoid/tanh blocks, heavy dropout and extreme learning rates cost loss; a dense
bottleneck reconstructs somewhat better than a conv map of as many values, as measured) plus small
noise seeded by the evaluation seed. It keeps no model. Tests and benchmarks run the real loop,
cache, resume, executors and reports on it in milliseconds.
"""

from __future__ import annotations

import hashlib
import math

from moncae.data import cached_dataset
from moncae.evaluation.records import EvalRecord, EvalResult, EvalTask, failed_record
from moncae.method.architecture import (
    bottleneck_shape,
    bottleneck_text,
    conv_output_shape,
    describe_with_bottleneck,
    forward_flops,
    loc_of_shape,
)

__all__ = ["surrogate_loss", "surrogate_task"]

NOISE = 0.004  # half-width of the seeded uniform noise on the loss
FLOOR = 0.03
_ACTIVATION_COST = {"relu": 0.0, "elu": -0.004, "sigmoid": 0.03, "tanh": 0.012}
DENSE_BONUS = 0.02  # loss a dense bottleneck saves over a conv map of as many values
LOW_FIDELITY_COST = 0.02  # a lower rung (a subset of the images) reads worse ...
LOW_FIDELITY_NOISE = 0.01  # ... and noisier, so its ranking only roughly predicts the full one


def _unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.sha256(f"surrogate:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def surrogate_loss(task: EvalTask, input_shape) -> float:
    """The made-up reconstruction loss of `task.genome` (smaller is better, about 0.05-0.4)."""
    genome = task.genome
    latent = math.prod(bottleneck_shape(genome, input_shape))
    pixels = math.prod(input_shape)
    loss = 0.06 + 0.22 / (1.0 + 12.0 * latent / pixels)  # more latent values reconstruct better
    for block in genome.blocks_for(input_shape):
        loss += _ACTIVATION_COST.get(block.activation, 0.01) + 0.02 * block.dropout ** 2
        loss -= 0.002 * math.log2(block.filters) + (0.003 if block.batch_norm else 0.0)
    loss += 0.01 * abs(math.log10(genome.learning_rate) + 3.0)  # 1e-3 is best
    loss += 0.01 if genome.optimizer in ("sgd", "adadelta", "adagrad") else 0.0
    loss -= DENSE_BONUS if genome.latent_units is not None else 0.0
    loss += NOISE * (2.0 * _unit(task.seed, task.key) - 1.0)
    if task.train.train_images is not None or task.train.decoder_only:  # a lower rung
        loss += LOW_FIDELITY_COST / task.train.epochs
        loss += LOW_FIDELITY_NOISE * (2.0 * _unit(task.seed, f"{task.key}@rung{task.rung}") - 1.0)
    # below FLOOR the loss bends smoothly towards 0 (no clamp: distinct networks keep distinct losses)
    return loss if loss > FLOOR else FLOOR * math.exp((loss - FLOOR) / FLOOR)


def surrogate_task(task: EvalTask) -> EvalResult:
    """Evaluate `task` with the surrogate: status ok, no model bytes, no time spent."""
    try:
        data = cached_dataset(task.data)
    except Exception as err:  # noqa: BLE001 - same contract as run_task
        return EvalResult(failed_record(task, f"data: {err}", failure="io"))
    genome, shape = task.genome, data.input_shape
    bottleneck = bottleneck_shape(genome, shape)
    params = sum(2 * b.kernel_size ** 2 * b.filters for b in genome.blocks_for(shape))
    if genome.latent_units is not None:
        params += 2 * genome.latent_units * math.prod(conv_output_shape(genome, shape))
    record = EvalRecord(
        genome_key=task.key or genome.key_for(shape), architecture=describe_with_bottleneck(genome, shape),
        rec_loss=surrogate_loss(task, shape), loc=loc_of_shape(bottleneck),
        bottleneck=bottleneck_text(bottleneck), params=params, epochs=task.train.epochs,
        fit_seconds=0.0, seconds=0.0, status="ok", rung=task.rung,
        train_images=min(data.sizes["train"], task.train.train_images or data.sizes["train"]),
        flops=forward_flops(genome, shape, task.train.model),
    )
    if task.measure_latency:  # a made-up latency: fixed overhead plus time proportional to FLOPs
        record.latency_ms = round(0.05 + record.flops / 2e8, 6)
    return EvalResult(record)
