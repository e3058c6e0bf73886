"""Decode a genome into a Keras 3 convolutional autoencoder.

Encoder: the active blocks in order, each Conv2D('same') -> [BatchNorm] -> activation ->
[Dropout] -> [MaxPool 2x2 'same', only while both sides are >= 2]; in a space with
`downsample = "strided"` such a block's Conv2D has strides 2 instead, and no MaxPool follows
(the same output size). The bottleneck is the
last encoder feature map (the paper), or, when the genome has a dense latent gene,
Flatten -> Dense(units, LATENT_ACTIVATION) after it; the decoder then starts with
Dense(h*w*c, the last block's activation) -> Reshape(h, w, c) back to the last conv map. The
decoder mirrors the blocks: per block, in reverse, Conv2D with the
block's filters, kernel and activation, then UpSampling2D where the encoder pooled, cropped
back to the size the encoder had there (so 4 -> 8 is cropped to 7). A final
Conv2D(input channels, sigmoid) gives an output of exactly the input's shape.

The bottleneck's shape and LOC are pure arithmetic, in `moncae.method.architecture`.
"""

from __future__ import annotations

from collections.abc import Sequence

from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()  # before keras imports TensorFlow
import keras  # noqa: E402
from keras import layers  # noqa: E402

from moncae.method.architecture import OUTPUT_KERNEL_SIZE  # noqa: E402
from moncae.method.genome import Block, Genome, check_input_shape, pooled_size  # noqa: E402

__all__ = ["LATENT_ACTIVATION", "build_autoencoder"]

# The dense bottleneck's code is linear (like PCA's): bench/dense_space.py measured it against
# the last block's activation (see the README).
LATENT_ACTIVATION = "linear"
# Every image layer says its layout: a `keras.json` with `image_data_format: channels_first` (Keras'
# default for layers that do not say) made every training fail (an audit).
IMAGES = "channels_last"


def _seeds(seed: int | None, offset: int) -> dict:
    """Explicit per-layer seeds: with them a model's initial weights and dropout masks depend
    only on `seed`, never on Python's global RNG (which other threads may also draw from)."""
    if seed is None:
        return {}
    return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed + offset)}


def _encoder_block(x, block: Block, i: int, seed: int | None = None):
    x = layers.Conv2D(block.filters, block.kernel_size, strides=2 if block.strided else 1,
                      padding="same", data_format=IMAGES, name=f"enc{i}_conv", **_seeds(seed, 2 * i))(x)
    if block.batch_norm:
        x = layers.BatchNormalization(name=f"enc{i}_bn")(x)
    x = layers.Activation(block.activation, name=f"enc{i}_act")(x)
    if block.dropout > 0:
        x = layers.Dropout(block.dropout, name=f"enc{i}_dropout",
                           seed=None if seed is None else seed + 2 * i + 1)(x)
    if block.pool and not block.strided:
        x = layers.MaxPooling2D(pool_size=2, padding="same", data_format=IMAGES, name=f"enc{i}_pool")(x)
    return x


def _decoder_block(x, block: Block, i: int, target: tuple[int, int], seed: int | None = None):
    """Mirror of encoder block `i`; `target` is the (h, w) the encoder had before pooling."""
    x = layers.Conv2D(block.filters, block.kernel_size, padding="same", data_format=IMAGES,
                      activation=block.activation, name=f"dec{i}_conv",
                      **_seeds(seed, 1000 + i))(x)
    if block.pool:
        x = layers.UpSampling2D(size=2, data_format=IMAGES, name=f"dec{i}_up")(x)
        (height, width) = target
        extra_h, extra_w = 2 * pooled_size(height) - height, 2 * pooled_size(width) - width
        if extra_h or extra_w:
            # 'same' max-pooling pads at the bottom/right, so the surplus is cropped there.
            x = layers.Cropping2D(((0, extra_h), (0, extra_w)), data_format=IMAGES, name=f"dec{i}_crop")(x)
    return x


def _encode(blocks: list[Block], input_shape: Sequence[int], seed: int | None):
    """The encoder's conv blocks on a new `image` input: (input, last conv map, each block's
    input height and width, the last conv map's shape)."""
    height, width, channels = check_input_shape(input_shape)
    inputs = keras.Input(shape=(height, width, channels), name="image")
    x, sizes = inputs, []
    for i, block in enumerate(blocks):
        sizes.append((height, width))
        x = _encoder_block(x, block, i, seed)
        if block.pool:
            height, width = pooled_size(height), pooled_size(width)
    return inputs, x, sizes, (height, width, blocks[-1].filters)


def _decode(x, blocks: list[Block], sizes: list[tuple[int, int]], conv_shape: tuple[int, int, int],
            channels: int, *, dense: bool, seed: int | None):
    """The mirrored decoder from a code `x` to the reconstruction: with a `dense` bottleneck first
    Dense(h*w*c) + Reshape to the last conv map, then the blocks in reverse, then the sigmoid
    output conv with the input's channels."""
    if dense:
        x = layers.Dense(conv_shape[0] * conv_shape[1] * conv_shape[2], activation=blocks[-1].activation,
                         name="dec_dense", **_seeds(seed, 1500))(x)
        x = layers.Reshape(conv_shape, name="dec_reshape")(x)
    for i in reversed(range(len(blocks))):
        x = _decoder_block(x, blocks[i], i, sizes[i], seed)
    return layers.Conv2D(channels, OUTPUT_KERNEL_SIZE, padding="same", activation="sigmoid",
                         data_format=IMAGES, name="reconstruction", **_seeds(seed, 2000))(x)


def build_autoencoder(genome: Genome, input_shape: Sequence[int], seed: int | None = None
                      ) -> tuple[keras.Model, keras.Model]:
    """Build (autoencoder, encoder); the encoder shares its layers with the autoencoder.

    Not compiled: the trainer picks the loss and makes the genome's optimizer. With `seed`,
    initial weights and dropout masks are fixed by it alone (the search passes the evaluation seed).
    """
    blocks = genome.blocks_for(input_shape)
    inputs, x, sizes, conv_shape = _encode(blocks, input_shape, seed)
    bottleneck = x
    units = genome.latent_units
    if units is not None:
        x = layers.Flatten(data_format=IMAGES, name="latent_flatten")(x)
        bottleneck = x = layers.Dense(units, activation=LATENT_ACTIVATION, name="latent",
                                      **_seeds(seed, 500))(x)
    outputs = _decode(x, blocks, sizes, conv_shape, input_shape[-1], dense=units is not None, seed=seed)
    encoder = keras.Model(inputs, bottleneck, name="encoder")
    autoencoder = keras.Model(inputs, outputs, name="autoencoder")
    return autoencoder, encoder
