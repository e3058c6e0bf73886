"""What a genome builds, computed without Keras: its bottleneck shape, LOC, a readable label, its
convolutions and their cost in FLOPs.

The compression objective costs nothing: `level_of_compression` is arithmetic on the genome and
the input shape (MaxPool 2x2 with 'same' padding: 28 -> 14 -> 7 -> 4 -> 2; a stride-2 conv,
`downsample = "strided"`, halves a map the same way); so is `forward_flops`. The bottleneck is
the last conv map, (height, width, channels), or, for a genome with a dense latent gene, the
dense layer, (units,): LOC = log10(units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from moncae.errors import MoncaeError
from moncae.method.genome import Genome, check_input_shape, pooled_size

__all__ = ["OUTPUT_KERNEL_SIZE", "ConvLayer", "bottleneck_shape", "bottleneck_text", "conv_layers",
           "conv_output_shape", "dense_macs", "describe_with_bottleneck", "forward_flops", "level_of_compression",
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


def bottleneck_text(shape: Sequence[int]) -> str:
    """A bottleneck shape as the CSVs' `bottleneck` column writes it: `4x4x4`, or `16` (dense)."""
    return "x".join(str(d) for d in shape)


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


# --------------------------------------------------------------------------- compute cost

OUTPUT_KERNEL_SIZE = 3  # the final Conv2D(input channels, sigmoid) that `model.decode` builds


@dataclass(frozen=True)
class ConvLayer:
    """One Conv2D of the autoencoder as `moncae.model.decode` builds it ('same' padding; `height`
    and `width` are its output's: its input's, or half of them, rounded up, for a strided block)."""

    name: str  # the Keras layer name: enc{i}_conv, dec{i}_conv or reconstruction
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel_size: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image: one k x k x in_channels window per output value."""
        return self.height * self.width * self.out_channels * self.kernel_size ** 2 * self.in_channels


def conv_layers(genome: Genome, input_shape: Sequence[int]) -> list[ConvLayer]:
    """Every Conv2D of the genome's autoencoder in forward order: the encoder's (a strided one at
    its output size), the mirrored decoder's (each runs at the size its encoder block *outputs*,
    before the upsampling), and the output conv at the input size."""
    height, width, channels = check_input_shape(input_shape)
    blocks = genome.blocks_for(input_shape)
    layers, sizes, c_in = [], [], channels
    for i, block in enumerate(blocks):
        halved = (pooled_size(height), pooled_size(width)) if block.pool else (height, width)
        at = halved if block.strided else (height, width)  # a strided conv computes at its output size
        layers.append(ConvLayer(f"enc{i}_conv", *at, c_in, block.filters, block.kernel_size))
        c_in = block.filters
        height, width = halved
        sizes.append((height, width))
    for i in reversed(range(len(blocks))):
        height, width = sizes[i]
        layers.append(ConvLayer(f"dec{i}_conv", height, width, c_in, blocks[i].filters,
                                blocks[i].kernel_size))
        c_in = blocks[i].filters
    height, width, _ = check_input_shape(input_shape)
    layers.append(ConvLayer("reconstruction", height, width, c_in, channels, OUTPUT_KERNEL_SIZE))
    return layers


def dense_macs(genome: Genome, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of the dense bottleneck, per image: the encoder's Dense(units) on the
    flattened last conv map and the decoder's Dense back to it (0 without a dense latent gene)."""
    if genome.latent_units is None:
        return 0
    return 2 * math.prod(conv_output_shape(genome, input_shape)) * genome.latent_units


def vae_head_macs(genome: Genome, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates a VAE adds to the AE of its genome, per image: its code has two heads
    on the last conv map where the AE has none (two 1x1 Conv2D of c -> c channels) or one (a
    second Dense(units), the log-variance's, beside the mean's)."""
    h, w, c = conv_output_shape(genome, input_shape)
    if genome.latent_units is None:
        return 2 * h * w * c * c
    return h * w * c * genome.latent_units


def forward_flops(genome: Genome, input_shape: Sequence[int], model: str = "ae") -> int:
    """Floating-point operations of one image's forward pass through the whole autoencoder (a
    VAE's, `model = "vae"`, with its mean and log-variance heads: `vae_head_macs`).

    Counted: every Conv2D (encoder, decoder, output) and, with a dense bottleneck, its two Dense
    layers, as 2 x their multiply-accumulates (a multiply and an add per weight per output value);
    zero padding at the borders is counted as if it were data ('same' padding, what a dense
    convolution kernel computes). Not counted: biases, batch-norm, activations, dropout (absent at
    inference), max-pooling, upsampling, cropping, flatten and reshape: a few operations per
    feature-map value each, against 2*k*k*in_channels per value for the conv that produces it.
    The encoder's share is the `enc*` layers of `conv_layers` (plus one of the two dense layers).
    """
    heads = vae_head_macs(genome, input_shape) if model == "vae" else 0
    return 2 * (sum(layer.macs for layer in conv_layers(genome, input_shape)) + dense_macs(genome, input_shape)
                + heads)
