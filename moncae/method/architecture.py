"""What a genome builds, computed without Keras: its bottleneck shape, LOC and a readable label.

The compression objective costs nothing: `level_of_compression` is arithmetic on the genome and
the input shape (MaxPool 2x2 with 'same' padding: 28 -> 14 -> 7 -> 4 -> 2). The bottleneck is the
last conv map, (height, width, channels), or, for a genome with a dense latent gene, the dense
layer, (units,): LOC = log10(units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from moncae.errors import MoncaeError
from moncae.method.genome import Genome, check_input_shape, pooled_size

__all__ = ["bottleneck_shape", "conv_output_shape", "describe_with_bottleneck", "level_of_compression",
           "loc_of_shape"]


def conv_output_shape(genome: Genome, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """(height, width, channels) of the last conv block's output (after its pooling)."""
    height, width, _ = check_input_shape(input_shape)
    blocks = genome.blocks_for(input_shape)
    for block in blocks:
        if block.pool:
            height, width = pooled_size(height), pooled_size(width)
    return height, width, blocks[-1].filters


def bottleneck_shape(genome: Genome, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of the encoder output: (height, width, channels) of the last conv map, or
    (units,) when the genome has a dense bottleneck."""
    conv = conv_output_shape(genome, input_shape)  # also validates the input shape
    return conv if genome.latent_units is None else (genome.latent_units,)


def loc_of_shape(shape: Sequence[int]) -> float:
    """Level of compression of a latent shape: log10 of its number of values (4x4x4 -> 1.806)."""
    dims = [int(d) for d in shape]
    if not dims or min(dims) < 1:
        raise MoncaeError(f"`shape` must be positive sizes. Received: shape={tuple(shape)!r}")
    return math.log10(math.prod(dims))


def level_of_compression(genome: Genome, input_shape: Sequence[int]) -> float:
    """The compression objective (minimised): LOC of the genome's bottleneck."""
    return loc_of_shape(bottleneck_shape(genome, input_shape))


def describe_with_bottleneck(genome: Genome, input_shape: Sequence[int]) -> str:
    """`describe()` for this input with the bottleneck before the training part.

    e.g. `C32k3-relu-bn-pool | C16k5-elu-pool | C4k3-relu -> 4x4x4 | adam lr=1e-3`, or with a
    dense bottleneck `C32k3-relu-pool | C32k3-relu-pool -> 7x7x32 -> dense16 | adam lr=1e-3`.
    """
    blocks = genome.blocks_for(input_shape)
    height, width, channels = conv_output_shape(genome, input_shape)
    arch = " | ".join(b.describe() for b in blocks)
    dense = "" if genome.latent_units is None else f" -> dense{genome.latent_units}"
    return f"{arch} -> {height}x{width}x{channels}{dense} | {genome.describe_training()}"
