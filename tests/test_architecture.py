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
    describe_with_bottleneck,
    level_of_compression,
    loc_of_shape,
)
from moncae.method.genome import Genome, GenomeSpace, random_genome

SPACE = GenomeSpace(max_filters=64)
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
