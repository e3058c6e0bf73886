"""Hypervolume and exclusive contributions: hand cases, edge cases, and the library."""

from __future__ import annotations

import moocore
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import moncae.method.objectives as objectives
from moncae.errors import MoncaeError
from moncae.method.objectives import (
    REFERENCE_POINT,
    contributions,
    hv_contributions,
    hypervolume,
    non_dominated_mask,
    unique_contributions,
)


def library_2d(points, ref=REFERENCE_POINT):
    """moocore on the same clipped points: the reference the 2-D sweep must agree with."""
    pts = np.minimum(np.asarray(points, dtype=float).reshape(-1, len(ref)), ref)
    if len(pts) == 0:
        return 0.0, np.zeros(0)
    return (moocore.hypervolume(pts, ref=ref),
            moocore.hv_contributions(pts, ref=ref, ignore_dominated=False))


# --- hand-computed cases -----------------------------------------------------------------

def test_reference_point_is_the_papers():
    assert REFERENCE_POINT == (4.0, 12.0)


def test_single_point():
    assert hypervolume([[1.0, 2.0]]) == pytest.approx(3 * 10)
    assert hv_contributions([[1.0, 2.0]]) == pytest.approx([30.0])


def test_two_point_staircase():
    # Boxes [1,4]x[6,12] (18) and [2,4]x[3,12] (18) overlap on [2,4]x[6,12] (12).
    points = [[1.0, 6.0], [2.0, 3.0]]
    assert hypervolume(points) == pytest.approx(24.0)
    assert hv_contributions(points) == pytest.approx([6.0, 6.0])


def test_three_points_with_custom_reference():
    points = [[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]]
    ref = (4.0, 4.0)
    # Staircase x=1..2 height 1, x=2..3 height 2, x=3..4 height 3.
    assert hypervolume(points, ref) == pytest.approx(6.0)
    assert hv_contributions(points, ref) == pytest.approx([1.0, 1.0, 1.0])


def test_dominated_points_contribute_nothing():
    points = [[1.0, 6.0], [2.0, 3.0], [3.0, 10.0], [2.0, 3.5]]
    contrib = hv_contributions(points)
    assert contrib[2] == 0.0 and contrib[3] == 0.0
    assert hypervolume(points) == pytest.approx(24.0)


def test_a_point_dominated_by_one_other_shrinks_its_contribution():
    # HV({(1,1),(2,2)}) - HV({(2,2)}) = 9 - 1... within ref (3,3): 4 - 1 = 3.
    assert hv_contributions([[1.0, 1.0], [2.0, 2.0]], (3.0, 3.0)) == pytest.approx([3.0, 0.0])


def test_the_front_rule_lets_no_dominated_point_shrink_the_one_dominating_it():
    # two networks with the same LOC (one dense bottleneck size): the paper's formula leaves the
    # better one only the sliver between their losses; over the front it gets its whole box
    points = [[0.30, 0.30], [0.31, 0.30], [0.20, 1.20]]
    paper = contributions(points, REFERENCE_POINT, "paper")
    front = contributions(points, REFERENCE_POINT, "front")
    assert paper[0] == pytest.approx(0.01 * 0.9)  # loss 0.30..0.31 x LOC 0.30..1.20
    assert front[0] == pytest.approx(3.7 * 0.9)  # loss 0.30..4 x LOC 0.30..1.20
    assert front[1] == paper[1] == 0.0 and front[2] == pytest.approx(paper[2])
    # per distinct network, as the search uses it
    assert unique_contributions(points, ["a", "b", "c"], rule="front") == pytest.approx(front)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 14)), min_size=1, max_size=15))
def test_the_front_rule_is_the_papers_over_the_non_dominated_points(points):
    front = contributions(points, REFERENCE_POINT, "front")
    mask = non_dominated_mask(np.minimum(np.array(points, dtype=float), REFERENCE_POINT))
    assert np.all(front[~mask] == 0)
    assert front[mask] == pytest.approx(hv_contributions(np.array(points)[mask]))
    assert np.all(front >= hv_contributions(points) - 1e-12)  # removing points shrinks nothing


def test_an_unknown_rule_is_a_user_error():
    with pytest.raises(MoncaeError, match="`rule` must be one of paper, front"):
        contributions([[1.0, 1.0]], REFERENCE_POINT, "sms")


def test_duplicates_contribute_nothing_but_count_once():
    points = [[1.0, 6.0], [1.0, 6.0], [2.0, 3.0]]
    assert hv_contributions(points) == pytest.approx([0.0, 0.0, 18.0 - 12.0])
    assert hypervolume(points) == pytest.approx(24.0)


def test_points_outside_the_box_are_clipped_and_add_nothing():
    inside = [[1.0, 6.0], [2.0, 3.0]]
    outside = [[10.0, 1.0], [0.5, 12.0], [4.0, 4.0], [np.nan, 1.0], [np.inf, np.inf]]
    assert hypervolume(inside + outside) == pytest.approx(24.0)
    assert hv_contributions(inside + outside) == pytest.approx([6.0, 6.0, 0, 0, 0, 0, 0])
    # A loss over the reference is clipped to it: the point sits on the edge, volume 0.
    assert hypervolume([[7.5, 1.0]]) == 0.0


def test_empty_input():
    assert hypervolume([]) == 0.0
    assert hypervolume(np.empty((0, 2))) == 0.0
    assert hv_contributions([]).shape == (0,)
    assert non_dominated_mask([]).shape == (0,)


@pytest.mark.parametrize("points, ref", [
    ([[1.0, 2.0, 3.0]], (4.0, 12.0)),
    ([1.0, 2.0], (4.0, 12.0)),
    ([[1.0, 2.0]], (4.0,)),
    ([[-np.inf, 2.0]], (4.0, 12.0)),
    ([[1.0, 2.0]], (4.0, np.nan)),
])
def test_malformed_input_is_a_user_error(points, ref):
    with pytest.raises(MoncaeError, match="Received"):
        hypervolume(points, ref)
    with pytest.raises(MoncaeError, match="Received"):
        hv_contributions(points, ref)


# --- agreement with the library ----------------------------------------------------------

def test_2d_sweep_agrees_with_moocore_on_1000_random_sets():
    rng = np.random.default_rng(46)
    for trial in range(1000):
        n = int(rng.integers(0, 30))
        if trial % 2:  # a coarse grid: ties, duplicates and points on the reference
            points = rng.integers(0, 9, size=(n, 2)) * np.array([0.5, 1.5])
        else:
            points = rng.uniform([0.0, 0.0], [5.0, 14.0], size=(n, 2))
        hv, contrib = library_2d(points)
        assert hypervolume(points) == pytest.approx(hv, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(hv_contributions(points), contrib, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 14)), max_size=12), st.randoms())
def test_contribution_is_leave_one_out_and_order_free(points, rnd):
    points = np.array(points, dtype=float).reshape(-1, 2)
    contrib = hv_contributions(points)
    total = hypervolume(points)
    for i in range(len(points)):
        assert contrib[i] == pytest.approx(total - hypervolume(np.delete(points, i, 0)),
                                           abs=1e-9)
    order = list(range(len(points)))
    rnd.shuffle(order)
    np.testing.assert_allclose(hv_contributions(points[order]), contrib[order], atol=1e-12)
    assert np.all(contrib >= 0)


def test_a_contribution_is_not_negative_by_rounding():
    """A front point over a point a hair above it (found by Hypothesis): its box minus that
    point's shadow rounded to -3.6e-15."""
    points = np.array([(2.1200392224082547, 0.0), (2.1200392224082547, 4.609153157416032e-85),
                       (2.4193397600016247, 0.0)])
    assert np.all(hv_contributions(points) >= 0)


def test_3d_goes_through_the_library(monkeypatch):
    calls = []

    def spy():
        calls.append(1)
        return moocore

    monkeypatch.setattr(objectives, "_moocore", spy)
    points = [[1.0, 1.0, 1.0], [2.0, 0.5, 1.0], [3.0, 3.0, 3.0], [1.0, 1.0, 1.0]]
    ref = (2.0, 2.0, 2.0)
    # (1,1,1) adds [1,2]^3 = 1; (2,..) sits on the x edge; the rest is dominated/duplicate.
    assert hypervolume(points, ref) == pytest.approx(1.0)
    assert hv_contributions(points, ref) == pytest.approx([0.0, 0.0, 0.0, 0.0])
    assert hv_contributions(points[:3], ref) == pytest.approx([1.0, 0.0, 0.0])
    assert len(calls) == 3
    cube = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    assert hypervolume(cube, (2, 2, 2)) == pytest.approx(
        moocore.hypervolume(np.array(cube), ref=[2, 2, 2]))


def test_library_path_clips_to_the_reference_too():
    assert hypervolume([[1.0, 1.0, 9.0]], (2.0, 2.0, 2.0)) == 0.0
    assert hv_contributions([[1.0, 1.0, np.nan], [1.5, 1.5, 1.5]], (2.0, 2.0, 2.0)) == \
        pytest.approx([0.0, 0.125])


# --- non-dominated mask ------------------------------------------------------------------

def test_non_dominated_mask():
    points = [[1.0, 6.0], [2.0, 3.0], [3.0, 10.0], [2.0, 3.0], [1.0, 7.0], [np.nan, 0.5]]
    assert non_dominated_mask(points).tolist() == [True, True, False, True, False, True]
    assert non_dominated_mask([[1, 2, 3], [2, 3, 4], [0, 5, 5]]).tolist() == [True, False, True]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3.9), st.floats(0, 11.9)), min_size=1, max_size=15))
def test_only_non_dominated_points_inside_the_box_can_contribute(points):
    contrib = hv_contributions(points)
    assert np.all(contrib[~non_dominated_mask(points)] == 0)
