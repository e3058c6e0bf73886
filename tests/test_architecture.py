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
    conv_output_shape,
    describe_with_bottleneck,
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


def test_loc_of_shape_rejects_empty_and_zero_sizes():
    for bad in [(), (0, 4, 4)]:
        with pytest.raises(MoncaeError, match="Received: shape="):
            loc_of_shape(bad)


@pytest.mark.parametrize("input_shape, chain", [
    ((28, 28, 1), [28, 14, 7, 4, 2, 1, 1]),
    ((32, 32, 3), [32, 16, 8, 4, 2, 1, 1]),
    ((8, 8, 1), [8, 4, 2, 1, 1, 1, 1]),
])
def test_repeated_pooling_halves_with_ceiling_and_stops_at_one(input_shape, chain):
    for n, side in enumerate(chain):
        assert bottleneck_shape(pooled_blocks(n or 1, pool=int(n > 0)), input_shape)[:2] \
            == (side, side)
    assert level_of_compression(pooled_blocks(4), (28, 28, 1)) == pytest.approx(math.log10(16))


def test_odd_shapes_stop_pooling_once_a_side_reaches_one():
    sides = [bottleneck_shape(pooled_blocks(n), (13, 17, 5))[:2] for n in range(1, 7)]
    assert sides == [(7, 9), (4, 5), (2, 3), (1, 2), (1, 2), (1, 2)]


def test_describe_with_bottleneck_drops_absent_pooling():
    text = describe_with_bottleneck(pooled_blocks(4), (8, 8, 1))
    assert text == ("C4k3-relu-pool | C4k3-relu-pool | C4k3-relu-pool | C4k3-relu -> 1x1x4"
                    " | adam lr=1e-4")


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
