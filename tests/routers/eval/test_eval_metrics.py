"""The evaluation measures against values computed by hand, and their properties."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from routers.eval._metrics import Point, aiq, apgr, cpt, mcnemar, ndch, pgr


def test_ndch_drops_points_that_lose_quality_and_points_under_a_mix() -> None:
    pts = [Point(1, 0.5, "a"), Point(2, 0.4, "worse"), Point(3, 0.9, "c"), Point(2, 0.6, "mid")]
    # (2, 0.4) costs more than a and is worse; (2, 0.6) lies under the a-c segment (0.7).
    assert [p.label for p in ndch(pts)] == ["a", "c"]
    assert [
        p.label for p in ndch([Point(1, 0.5, "a"), Point(2, 0.8, "b"), Point(3, 0.9, "c")])
    ] == [
        "a",
        "b",
        "c",
    ]


def test_aiq_is_the_mean_height_of_the_hull_over_the_shared_range() -> None:
    pts = [Point(1, 0.5), Point(3, 0.9)]
    assert aiq(pts) == pytest.approx(0.7)
    # Past its last point the hull stays flat: (0.7 * 2 + 0.9 * 2) / 4.
    assert aiq(pts, (1, 5)) == pytest.approx(0.8)
    assert aiq([Point(2, 0.6)], (2, 2)) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="below the router's cheapest point"):
        aiq(pts, (0.5, 3))


def test_pgr_apgr_and_cpt_by_hand() -> None:
    assert pgr(0.7, weak=0.5, strong=0.9) == pytest.approx(0.5)
    line = [(0.0, 0.5), (1.0, 0.9)]
    assert apgr(line, 0.5, 0.9) == pytest.approx(0.5)
    assert cpt(line, 0.5, 0.9, 0.5) == pytest.approx(0.5)
    assert cpt(line, 0.5, 0.9, 0.8) == pytest.approx(0.8)
    # A router that recovers 80% of the gap with 20% strong calls.
    good = [(0.0, 0.5), (0.2, 0.82), (1.0, 0.9)]
    assert cpt(good, 0.5, 0.9, 0.8) == pytest.approx(0.2)
    assert apgr(good, 0.5, 0.9) == pytest.approx(0.2 * 0.4 + 0.8 * 0.9)
    assert cpt([(0.0, 0.5), (1.0, 0.6)], 0.5, 0.9, 0.5) is None
    with pytest.raises(ValueError, match="span strong-call shares 0 to 1"):
        apgr([(0.2, 0.6), (1.0, 0.9)], 0.5, 0.9)


def test_mcnemar_exact_p_values() -> None:
    t = mcnemar([True, True, True, False], [False, False, True, True])
    assert (t.only_a, t.only_b) == (2, 1) and t.p_value == pytest.approx(1.0)
    t = mcnemar([True] * 10, [False] * 10)
    assert t.p_value == pytest.approx(2 / 2**10)
    assert mcnemar([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar([True], [True, False])


POINTS = st.lists(
    st.builds(
        Point,
        st.floats(0, 10, allow_nan=False),
        st.floats(0, 1, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
)


@example([Point(0.0, 0.0), Point(1.0, 0.0), Point(5e-324, 0.75)])  # once above every point
@given(POINTS)
def test_the_hull_is_non_decreasing_concave_and_dominates_every_point(pts: list[Point]) -> None:
    hull = ndch(pts)
    assert all(a.cost < b.cost and a.quality < b.quality for a, b in itertools.pairwise(hull))
    slopes = [(b.quality - a.quality) / (b.cost - a.cost) for a, b in itertools.pairwise(hull)]
    assert all(s1 >= s2 - 1e-9 for s1, s2 in itertools.pairwise(slopes))
    lo, hi = hull[0].cost, max(p.cost for p in pts)
    score = aiq(pts)
    assert min(p.quality for p in hull) - 1e-9 <= score <= max(p.quality for p in pts) + 1e-9
    # Adding a setting never lowers AIQ over the same range.
    extra = Point((lo + hi) / 2, 1.0)
    assert aiq([*pts, extra], (lo, hi)) >= score - 1e-9 or math.isclose(lo, hi)
