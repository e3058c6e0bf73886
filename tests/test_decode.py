"""Every genome the operators can produce decodes to an autoencoder of the input's shape.

Models are built, never trained. Building costs ~50 ms, so the property tests keep
`max_examples` modest and clear the Keras session now and then. Both search spaces: the paper's
(`SPACE`) and the `dense` one (`DENSE`: + the latent gene; max 16 filters, because an unpooled
64x64x16 map before Dense(256) already builds 34M weights).
"""

from __future__ import annotations

import itertools
import math
import random

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moncae.errors import MoncaeError
from moncae.method.architecture import (
    bottleneck_shape,
    conv_layers,
    describe_with_bottleneck,
    forward_flops,
    level_of_compression,
)
from moncae.method.genome import (
    DENSE_LATENT_SIZES,
    Genome,
    GenomeSpace,
    crossover,
    mutate,
    random_genome,
)
from moncae.model.decode import LATENT_ACTIVATION, build_autoencoder

pytestmark = pytest.mark.slow  # builds Keras models (importing TensorFlow alone takes seconds)

SPACE = GenomeSpace(max_filters=64)
DENSE = GenomeSpace(max_filters=16, latent_sizes=DENSE_LATENT_SIZES)
STRIDED = GenomeSpace(max_filters=16, latent_sizes=DENSE_LATENT_SIZES, downsample="strided")
INPUT_SHAPES = [(28, 28, 1), (32, 32, 3), (8, 8, 1), (13, 17, 5), (9, 31, 2), (64, 64, 3)]
_builds = itertools.count()

shapes = st.sampled_from(INPUT_SHAPES)
spaces = st.sampled_from([SPACE, DENSE, STRIDED])
seeds = st.integers(0, 2**32 - 1)


def pooled_blocks(n: int, pool: int = 1, space: GenomeSpace = SPACE) -> Genome:
    """n active 4-filter blocks with the given pool gene; the rest inactive."""
    block = [1, 0, 0, 0, 0, 0, pool]
    off = [0] * 7
    genes = block * n + off * (space.max_blocks - n) + [0, 0]
    return Genome(tuple(genes), space)


def check_decodes(genome: Genome, input_shape: tuple[int, int, int]) -> None:
    """The invariants of the issue, on one built model."""
    if next(_builds) % 25 == 24:
        keras.backend.clear_session()
    autoencoder, encoder = build_autoencoder(genome, input_shape)
    assert tuple(autoencoder.output_shape) == (None, *input_shape)
    assert tuple(encoder.output_shape) == (None, *bottleneck_shape(genome, input_shape))
    assert math.isclose(level_of_compression(genome, input_shape),
                        math.log10(math.prod(encoder.output_shape[1:])))
    assert {id(layer) for layer in encoder.layers} <= {id(layer) for layer in autoencoder.layers}
    if autoencoder.count_params() > 1_000_000:  # big dense layers: free their weights now
        del autoencoder, encoder
        keras.backend.clear_session()


# --- property tests: every genome decodes ------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(seeds, shapes, spaces)
def test_random_genomes_decode(seed, input_shape, space):
    check_decodes(random_genome(space, random.Random(seed)), input_shape)


@settings(max_examples=80, deadline=None)
@given(seeds, st.integers(0, 80), st.integers(1, 6), shapes, spaces)
def test_mutated_genomes_decode(seed, generation, rounds, input_shape, space):
    rng = random.Random(seed)
    genome = random_genome(space, rng)
    for _ in range(rounds):
        genome = mutate(genome, space, rng, generation)
    check_decodes(genome, input_shape)


@settings(max_examples=80, deadline=None)
@given(seeds, shapes, spaces)
def test_crossed_over_genomes_decode(seed, input_shape, space):
    rng = random.Random(seed)
    child, other = crossover(random_genome(space, rng), random_genome(space, rng), rng)
    check_decodes(child if rng.random() < 0.5 else other, input_shape)


@settings(max_examples=50, deadline=None)
@given(st.data(), shapes)
def test_any_valid_genome_of_a_small_or_large_space_decodes(data, input_shape):
    space = data.draw(st.sampled_from([GenomeSpace(max_blocks=1), GenomeSpace(max_blocks=8),
                                       GenomeSpace(min_filters=1, max_filters=8),
                                       GenomeSpace(max_blocks=1, max_filters=8, latent_sizes=(1, 256)),
                                       GenomeSpace(max_blocks=8, max_filters=8,
                                                   latent_sizes=DENSE_LATENT_SIZES),
                                       GenomeSpace(max_blocks=8, max_filters=8, downsample="strided")]))
    genes = [data.draw(st.integers(0, card - 1)) for card in space.cardinalities()]
    genes[0] = 1
    check_decodes(Genome(tuple(genes), space), input_shape)


def test_built_layers_follow_the_blocks():
    genome = Genome(tuple(
        [1, 3, 0, 1, 0, 2, 1]        # C32k3 bn relu drop0.2 pool
        + [1, 2, 1, 0, 1, 0, 1]      # C16k5 elu pool
        + [1, 0, 0, 0, 0, 0, 0]      # C4k3 relu
        + [0] * 7 * 3 + [0, 2]), SPACE)
    autoencoder, encoder = build_autoencoder(genome, (28, 28, 1))
    kinds = [type(layer).__name__ for layer in encoder.layers]
    assert kinds == ["InputLayer", "Conv2D", "BatchNormalization", "Activation", "Dropout",
                     "MaxPooling2D", "Conv2D", "Activation", "MaxPooling2D", "Conv2D",
                     "Activation"]
    decoder = [type(layer).__name__ for layer in autoencoder.layers[len(encoder.layers):]]
    assert decoder == ["Conv2D", "Conv2D", "UpSampling2D", "Conv2D", "UpSampling2D", "Conv2D"]
    assert encoder.output_shape == (None, 7, 7, 4)
    assert autoencoder.get_layer("dec0_conv").kernel_size == (3, 3)
    assert autoencoder.get_layer("dec1_conv").kernel_size == (5, 5)
    assert autoencoder.get_layer("reconstruction").activation.__name__ == "sigmoid"
    assert describe_with_bottleneck(genome, (14, 14, 1)) == (
        "C32k3-relu-bn-drop0.2-pool | C16k5-elu-pool | C4k3-relu -> 4x4x4 | adam lr=1e-3")


def test_strided_blocks_halve_by_their_conv_and_are_counted_at_its_output_size():
    genes = ([1, 3, 0, 1, 0, 2, 1]   # C32k3 bn relu drop0.2, halves
             + [1, 2, 1, 0, 1, 0, 1]  # C16k5 elu, halves
             + [1, 0, 0, 0, 0, 0, 0]  # C4k3 relu
             + [0] * 7 * 3 + [0, 2])
    genome, pooled = Genome(tuple(genes), GenomeSpace(max_filters=64, downsample="strided")), \
        Genome(tuple(genes), SPACE)
    autoencoder, encoder = build_autoencoder(genome, (13, 17, 1))
    kinds = [type(layer).__name__ for layer in encoder.layers]
    assert kinds == ["InputLayer", "Conv2D", "BatchNormalization", "Activation", "Dropout",
                     "Conv2D", "Activation", "Conv2D", "Activation"]
    assert [encoder.get_layer(f"enc{i}_conv").strides for i in range(3)] == [(2, 2), (2, 2), (1, 1)]
    assert encoder.output_shape == (None, 4, 5, 4) == (None, *bottleneck_shape(pooled, (13, 17, 1)))
    assert autoencoder.output_shape == (None, 13, 17, 1)
    # the decoder is the pooled genome's (upsampling), and the weights have the same shapes
    reference, _ = build_autoencoder(pooled, (13, 17, 1))

    def decoder(model):
        return [(layer.name, type(layer).__name__) for layer in model.layers
                if not layer.name.startswith(("enc", "image"))]

    assert decoder(autoencoder) == decoder(reference)
    assert [w.shape for w in autoencoder.get_weights()] == [w.shape for w in reference.get_weights()]
    # FLOPs: each conv at the size of the map it outputs
    for layer in conv_layers(genome, (13, 17, 1)):
        assert autoencoder.get_layer(layer.name).output.shape[1:3] == (layer.height, layer.width)
    assert forward_flops(genome, (13, 17, 1)) < forward_flops(pooled, (13, 17, 1))
    assert genome.key != pooled.key and describe_with_bottleneck(genome, (13, 17, 1)) == (
        "C32k3-relu-bn-drop0.2-stride2 | C16k5-elu-stride2 | C4k3-relu -> 4x5x4 | adam lr=1e-3")


def test_dense_bottleneck_layers_and_activations():
    genome = Genome(tuple(
        [1, 2, 0, 0, 1, 0, 1]        # C16k3 elu pool
        + [1, 1, 1, 1, 3, 0, 1]      # C8k5 bn tanh pool
        + [0] * 7 * 4 + [4, 0, 2]), DENSE)  # dense16, adam, 1e-3
    autoencoder, encoder = build_autoencoder(genome, (28, 28, 1))
    kinds = [type(layer).__name__ for layer in autoencoder.layers]
    assert kinds == ["InputLayer", "Conv2D", "Activation", "MaxPooling2D", "Conv2D",
                     "BatchNormalization", "Activation", "MaxPooling2D", "Flatten", "Dense", "Dense",
                     "Reshape", "Conv2D", "UpSampling2D", "Conv2D", "UpSampling2D", "Conv2D"]
    assert encoder.output_shape == (None, 16) and encoder.layers[-1].name == "latent"
    latent, dec_dense = autoencoder.get_layer("latent"), autoencoder.get_layer("dec_dense")
    assert latent.activation.__name__ == LATENT_ACTIVATION == "linear"
    assert dec_dense.activation.__name__ == "tanh"  # the last block's activation
    assert dec_dense.units == 7 * 7 * 8
    assert autoencoder.get_layer("dec_reshape").output.shape[1:] == (7, 7, 8)
    assert describe_with_bottleneck(genome, (28, 28, 1)) == (
        "C16k3-elu-pool | C8k5-tanh-bn-pool -> 7x7x8 -> dense16 | adam lr=1e-3")
    # The latent gene at 0 builds exactly the paper-space network.
    conv = Genome(genome.genes[:42] + (0,) + genome.genes[43:], DENSE)
    paper = Genome(genome.genes[:42] + genome.genes[43:], GenomeSpace(max_filters=16))
    shapes_of = [[tuple(w.shape) for w in build_autoencoder(g, (28, 28, 1))[0].weights]
                 for g in (conv, paper)]
    assert shapes_of[0] == shapes_of[1]


def test_odd_sizes_are_cropped_back_on_the_way_up():
    autoencoder, _ = build_autoencoder(pooled_blocks(3), (13, 17, 5))
    crops = [layer for layer in autoencoder.layers if type(layer).__name__ == "Cropping2D"]
    assert [layer.output.shape[1:3] for layer in crops] == [(4, 5), (7, 9), (13, 17)]
    assert autoencoder.output_shape == (None, 13, 17, 5)


@pytest.mark.parametrize("bad", [(28, 28), (0, 28, 1), (28, 28, 1, 1), "28x28", (28.5, 28, 1)])
def test_bad_input_shapes_are_user_errors(bad):
    with pytest.raises(MoncaeError, match="input_shape"):
        bottleneck_shape(pooled_blocks(1), bad)
    with pytest.raises(MoncaeError, match="input_shape"):
        build_autoencoder(pooled_blocks(1), bad)


def test_seeded_build_ignores_the_global_rng():
    """With `seed`, initial weights depend on it alone: other threads drawing from Python's
    global RNG (Dask's do) cannot change a training's result."""
    import random

    import numpy as np

    genome = random_genome(GenomeSpace(max_blocks=3, max_filters=16), random.Random(3))

    def weights(seed, global_seed):
        keras.backend.clear_session()
        random.seed(global_seed)
        autoencoder, _ = build_autoencoder(genome, (28, 28, 1), seed=seed)
        return autoencoder.get_weights()

    same_a, same_b, other = weights(7, 1), weights(7, 999), weights(8, 1)
    assert all(np.array_equal(a, b) for a, b in zip(same_a, same_b))
    assert not all(np.array_equal(a, b) for a, b in zip(same_a, other))


def test_a_keras_config_with_channels_first_changes_nothing():
    """A `keras.json` with `image_data_format: channels_first` made every training fail (an audit):
    every image layer says its layout."""
    import random

    import keras

    from moncae.method.genome import GenomeSpace, random_genome
    from moncae.model.decode import build_autoencoder
    from moncae.model.vae import build_vae

    rng = random.Random(2)
    genomes = [random_genome(GenomeSpace(max_blocks=3, max_filters=8, latent_sizes=(4,)), rng) for _ in range(3)]
    genomes += [random_genome(GenomeSpace(max_blocks=3, max_filters=8), rng) for _ in range(3)]
    keras.config.set_image_data_format("channels_first")
    try:
        for genome in genomes:
            ae, _ = build_autoencoder(genome, (9, 31, 2), seed=1)
            assert ae.output_shape == (None, 9, 31, 2)
            assert build_vae(genome, (9, 31, 2), seed=1).vae.output_shape == (None, 9, 31, 2)
    finally:
        keras.config.set_image_data_format("channels_last")
