"""What a genome builds, computed without Keras: bottleneck shape, LOC, the readable label."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moncae.errors import MoncaeError
from moncae.method.architecture import (
    bottleneck_shape,
    bottleneck_text,
    conv_layers,
    conv_output_shape,
    describe_with_bottleneck,
    forward_flops,
    level_of_compression,
    loc_of_shape,
)
from moncae.method.genome import DENSE_LATENT_SIZES, Genome, GenomeSpace, random_genome

SPACE = GenomeSpace(max_filters=64)
DENSE = GenomeSpace(max_filters=64, latent_sizes=DENSE_LATENT_SIZES)
ODD_SHAPES = [(9, 31, 2), (64, 64, 3), (1, 1, 1), (13, 17, 5)]
seeds = st.integers(0, 2**32 - 1)


def pooled_blocks(n: int, pool: int = 1, space: GenomeSpace = SPACE) -> Genome:
    """n active 4-filter blocks with the given pool gene; the rest inactive."""
    block = [1, 0, 0, 0, 0, 0, pool]
    off = [0] * 7
    genes = block * n + off * (space.max_blocks - n) + [0, 0]
    return Genome(tuple(genes), space)


@settings(max_examples=300, deadline=None)
@given(seeds, st.integers(1, 64), st.integers(1, 64), st.integers(1, 4))
def test_bottleneck_arithmetic_for_many_shapes_without_keras(seed, height, width, channels):
    genome = random_genome(SPACE, random.Random(seed))
    assert bottleneck_shape(genome, (height, width, channels)) == \
        conv_output_shape(genome, (height, width, channels))
    h, w, c = bottleneck_shape(genome, (height, width, channels))
    pools = sum(block.pool for block in genome.blocks_for((height, width, channels)))
    assert (h, w) == (math.ceil(height / 2**pools), math.ceil(width / 2**pools))
    assert c == genome.blocks[-1].filters
    assert pools == 0 or min(math.ceil(height / 2 ** (pools - 1)),
                             math.ceil(width / 2 ** (pools - 1))) >= 2


# --- paper values and pooling arithmetic -------------------------------------------------

@pytest.mark.parametrize("shape, loc", [
    ((4, 4, 4), 1.806), ((7, 7, 4), 2.292), ((2, 2, 4), 1.204), ((7, 7, 16), 2.894),
    ((8, 8, 8), 2.709), ((1, 1, 1), 0.0),
])
def test_level_of_compression_matches_the_paper(shape, loc):
    assert round(loc_of_shape(shape), 3) == loc


def test_bottleneck_text_is_the_csv_column():
    assert bottleneck_text((4, 4, 4)) == "4x4x4" and bottleneck_text((16,)) == "16"


def test_loc_of_shape_rejects_empty_and_zero_sizes():
    for bad in [(), (0, 4, 4)]:
        with pytest.raises(MoncaeError, match="Received: shape="):
            loc_of_shape(bad)


LEGACY = GenomeSpace(max_filters=64, min_pool_side=2)  # moncae before 2026-12-07: down to 1x1


@pytest.mark.parametrize("input_shape, chain", [
    ((28, 28, 1), [28, 14, 7, 4, 2, 2, 2]),  # the MONCAE authors' code: 28 -> 14 -> 7 -> 4 -> 2
    ((32, 32, 3), [32, 16, 8, 4, 2, 2, 2]),
    ((8, 8, 1), [8, 4, 2, 2, 2, 2, 2]),
    ((5, 5, 1), [5, 3, 2, 2, 2, 2, 2]),
])
def test_repeated_pooling_halves_with_ceiling_and_stops_at_two(input_shape, chain):
    for n, side in enumerate(chain):
        assert bottleneck_shape(pooled_blocks(n or 1, pool=int(n > 0)), input_shape)[:2] \
            == (side, side)
    assert level_of_compression(pooled_blocks(4), (28, 28, 1)) == pytest.approx(math.log10(16))
    assert level_of_compression(pooled_blocks(6), (28, 28, 1)) == pytest.approx(math.log10(16))


@pytest.mark.parametrize("input_shape, chain", [
    ((28, 28, 1), [28, 14, 7, 4, 2, 1, 1]),
    ((32, 32, 3), [32, 16, 8, 4, 2, 1, 1]),
    ((8, 8, 1), [8, 4, 2, 1, 1, 1, 1]),
])
def test_min_pool_side_2_halves_down_to_one_as_before(input_shape, chain):
    for n, side in enumerate(chain):
        assert bottleneck_shape(pooled_blocks(n or 1, pool=int(n > 0), space=LEGACY), input_shape)[:2] \
            == (side, side)


def test_odd_shapes_stop_pooling_once_a_side_is_below_three():
    sides = [bottleneck_shape(pooled_blocks(n), (13, 17, 5))[:2] for n in range(1, 7)]
    assert sides == [(7, 9), (4, 5), (2, 3), (2, 3), (2, 3), (2, 3)]
    legacy = [bottleneck_shape(pooled_blocks(n, space=LEGACY), (13, 17, 5))[:2] for n in range(1, 7)]
    assert legacy == [(7, 9), (4, 5), (2, 3), (1, 2), (1, 2), (1, 2)]


def test_a_space_saved_without_min_pool_side_decodes_as_before():
    saved = {k: v for k, v in LEGACY.to_config().items()}
    assert "min_pool_side" not in saved  # written as before the field existed
    assert GenomeSpace.from_config(saved) == LEGACY
    assert GenomeSpace.from_config(SPACE.to_config()) == SPACE and SPACE.to_config()["min_pool_side"] == 3
    with pytest.raises(MoncaeError, match="min_pool_side"):
        GenomeSpace(min_pool_side=1)


def test_describe_with_bottleneck_drops_absent_pooling():
    text = describe_with_bottleneck(pooled_blocks(4), (8, 8, 1))
    assert text == ("C4k3-relu-pool | C4k3-relu-pool | C4k3-relu | C4k3-relu -> 2x2x4"
                    " | adam lr=1e-4")


# --- FLOPs: 2 x the multiply-adds of every Conv2D, counted by hand ----------------------------

def built(*blocks, space: GenomeSpace = SPACE) -> Genome:
    """A genome of the given (filters, kernel, pool) blocks, relu, no batch-norm or dropout."""
    genes = []
    for filters, kernel, pool in blocks:
        genes += [1, int(math.log2(filters // space.min_filters)), space.kernel_sizes.index(kernel),
                  0, 0, 0, pool]
    genes += [0] * 7 * (space.max_blocks - len(blocks))
    return Genome(tuple(genes + [0, 0]), space)


# MACs of a 'same' conv = out_h * out_w * out_channels * k * k * in_channels.
HAND_COUNTS = [
    # one block, no pooling, 28x28x1: enc0 28*28*4*9*1, dec0 28*28*4*9*4, output 28*28*1*9*4
    (built((4, 3, 0)), (28, 28, 1), 28 * 28 * 4 * 9 + 28 * 28 * 4 * 9 * 4 + 28 * 28 * 9 * 4),
    # C8k5-pool | C4k3-pool on 28x28x1 (bottleneck 7x7x4): enc0 at 28 (1 -> 8, k5), enc1 at 14
    # (8 -> 4, k3); dec1 at 7 (4 -> 4, k3), dec0 at 14 (4 -> 8, k5); output at 28 (8 -> 1, k3)
    (built((8, 5, 1), (4, 3, 1)), (28, 28, 1),
     784 * 8 * 25 + 196 * 4 * 9 * 8 + 49 * 4 * 9 * 4 + 196 * 8 * 25 * 4 + 784 * 1 * 9 * 8),
    # C16k3-pool | C8k5-pool | C4k7-pool on 28x28x1: 28 -> 14 -> 7 -> 4 (4x4x4), the decoder
    # upsamples 4 -> 8 and crops to 7. enc at 28, 14, 7; dec2 at 4, dec1 at 7, dec0 at 14
    (built((16, 3, 1), (8, 5, 1), (4, 7, 1)), (28, 28, 1),
     784 * 16 * 9 + 196 * 8 * 25 * 16 + 49 * 4 * 49 * 8
     + 16 * 4 * 49 * 4 + 49 * 8 * 25 * 4 + 196 * 16 * 9 * 8 + 784 * 1 * 9 * 16),
    # the same on 32x32x3: 32 -> 16 -> 8 -> 4, the output conv back to 3 channels
    (built((16, 3, 1), (8, 5, 1), (4, 7, 1)), (32, 32, 3),
     1024 * 16 * 9 * 3 + 256 * 8 * 25 * 16 + 64 * 4 * 49 * 8
     + 16 * 4 * 49 * 4 + 64 * 8 * 25 * 4 + 256 * 16 * 9 * 8 + 1024 * 3 * 9 * 16),
]


@pytest.mark.parametrize("genome, shape, macs", HAND_COUNTS, ids=["1-block", "2-pool", "3-pool-crop", "cifar"])
def test_forward_flops_is_twice_the_conv_multiply_adds_counted_by_hand(genome, shape, macs):
    assert forward_flops(genome, shape) == 2 * macs


def test_hand_counts_spelled_out():
    assert [forward_flops(g, s) for g, s, _ in HAND_COUNTS] == [338_688, 867_104, 2_414_720, 4_325_888]


def test_conv_layers_mirror_the_encoder_and_end_at_the_input_size():
    layers = conv_layers(built((16, 3, 1), (8, 5, 1), (4, 7, 1)), (28, 28, 1))
    assert [(c.name, c.height, c.in_channels, c.out_channels, c.kernel_size) for c in layers] == [
        ("enc0_conv", 28, 1, 16, 3), ("enc1_conv", 14, 16, 8, 5), ("enc2_conv", 7, 8, 4, 7),
        ("dec2_conv", 4, 4, 4, 7), ("dec1_conv", 7, 4, 8, 5), ("dec0_conv", 14, 8, 16, 3),
        ("reconstruction", 28, 16, 1, 3),
    ]


def test_flops_ignore_pooling_absent_for_the_input_and_capped_filters():
    # on 2x2 the second pool is absent (1x1 already): same FLOPs as without its pool gene
    assert forward_flops(built((4, 3, 1), (4, 3, 1)), (2, 2, 1)) \
        == forward_flops(built((4, 3, 1), (4, 3, 0)), (2, 2, 1))
    # a wider block after a narrower one is capped to the narrower width
    assert forward_flops(built((4, 3, 0), (64, 3, 0)), (8, 8, 1)) \
        == forward_flops(built((4, 3, 0), (4, 3, 0)), (8, 8, 1))


# --- the dense space's latent gene --------------------------------------------------------

def paper_twin(genome: Genome) -> Genome:
    """The same blocks in the paper space (no latent gene): its bottleneck is the conv map."""
    n = DENSE.max_blocks * 7
    return Genome(genome.genes[:n] + genome.genes[n + 1:], SPACE)


@settings(max_examples=200, deadline=None)
@given(seeds, st.one_of(st.sampled_from(ODD_SHAPES),
                        st.tuples(st.integers(1, 64), st.integers(1, 64), st.integers(1, 4))))
def test_dense_space_bottleneck_is_the_dense_layer_or_the_conv_map(seed, input_shape):
    genome = random_genome(DENSE, random.Random(seed))
    conv = conv_output_shape(genome, input_shape)
    assert conv == bottleneck_shape(paper_twin(genome), input_shape)
    shape = bottleneck_shape(genome, input_shape)
    if genome.latent_units is None:
        assert shape == conv
    else:
        assert shape == (genome.latent_units,)
    assert level_of_compression(genome, input_shape) == pytest.approx(math.log10(math.prod(shape)))


def dense(units: int, n_pooled: int = 2) -> Genome:
    genes = list(pooled_blocks(n_pooled).genes)
    genes[DENSE.max_blocks * 7:DENSE.max_blocks * 7] = [DENSE.latent_sizes.index(units) + 1]
    return Genome(tuple(genes), DENSE)


@pytest.mark.parametrize("units, loc", [(2, 0.301), (16, 1.204), (32, 1.505), (256, 2.408)])
def test_dense_bottleneck_loc_is_log10_of_its_units(units, loc):
    for input_shape in [(28, 28, 1), *ODD_SHAPES]:
        assert bottleneck_shape(dense(units), input_shape) == (units,)
        assert round(level_of_compression(dense(units), input_shape), 3) == loc


def test_describe_with_a_dense_bottleneck_shows_the_conv_map_then_the_units():
    assert describe_with_bottleneck(dense(16), (9, 31, 2)) == (
        "C4k3-relu-pool | C4k3-relu-pool -> 3x8x4 -> dense16 | adam lr=1e-4")
    assert conv_output_shape(dense(16), (28, 28, 1)) == (7, 7, 4)
