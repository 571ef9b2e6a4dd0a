"""Scoring router settings on a labelled split without runs: outcomes as arrays, the
points of argmax choices (ties as the routers break them), AIQ over the zero router, the
hull settings kept, and APGR of a ranking score, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from routers.eval import (
    Dataset,
    Point,
    Sample,
    Task,
    aiq,
    aiq_gain,
    choice_points,
    hull_settings,
    ndch,
    outcome_arrays,
    ranked_apgr,
)


def tiny() -> Dataset:
    def task(i: int, cheap: float) -> Task:
        return Task(
            id=f"t{i}",
            question=f"q{i}",
            responses={
                "dear": [Sample(text="x", score=1.0, cost_usd=0.01)],
                "cheap": [Sample(text="y", score=cheap, cost_usd=0.001)],
            },
        )

    return Dataset(name="tiny", tasks=[task(i, float(i % 2)) for i in range(4)])


def test_outcome_arrays_are_in_model_name_order() -> None:
    out = outcome_arrays(tiny())
    assert out.models == ["cheap", "dear"] and out.texts == ["q0", "q1", "q2", "q3"]
    assert out.quality.tolist() == [[0, 1], [1, 1], [0, 1], [1, 1]]
    assert out.cost[:, 1].tolist() == [0.01] * 4
    assert out.singles() == [Point(0.001, 0.5, "cheap"), Point(0.01, 1.0, "dear")]
    with pytest.raises(ValueError, match="no task every model was scored on"):
        outcome_arrays(Dataset(name="empty", tasks=[]))


def test_choice_points_follow_argmax_with_ties_to_the_first_model() -> None:
    out = outcome_arrays(tiny())
    all_cheap = np.zeros((4, 2))  # a tie everywhere: the first model (cheap)
    by_truth = np.array([[0, 1], [1, 0], [0, 1], [1, 0]], dtype=float)
    pts = choice_points([all_cheap, by_truth], out, ["tie", "oracle"])
    assert pts[0] == Point(pytest.approx(0.001), 0.5, "tie")
    assert pts[1] == Point(pytest.approx(0.0055), 1.0, "oracle")


def test_aiq_gain_is_the_area_over_the_zero_router() -> None:
    singles = [Point(0.001, 0.5), Point(0.01, 1.0)]
    assert aiq_gain(singles, singles) == pytest.approx(0.0)
    better = [Point(0.001, 0.5), Point(0.0055, 1.0)]
    # over [0.001, 0.01]: ours reaches 1.0 at 0.0055, the zero router's line at 0.01
    expected = aiq(better, (0.001, 0.01)) - aiq(singles, (0.001, 0.01))
    assert aiq_gain(better, singles) == pytest.approx(expected) and expected > 0.1
    assert aiq_gain([Point(0.02, 1.0)], singles) == float("-inf")


def test_hull_settings_keep_the_vertices_that_keep_the_most_area() -> None:
    points = [
        Point(1.0, 0.5, "a"),
        Point(1.0, 0.5, "a again"),  # the same vertex: the first setting stands for it
        Point(2.0, 0.9, "b"),
        Point(3.0, 0.97, "c"),
        Point(2.5, 0.6, "below"),
        Point(4.0, 1.0, "d"),
    ]
    assert [p.label for p in ndch(points)] == ["a", "b", "c", "d"]
    assert hull_settings(points, 10) == [0, 2, 3, 5]
    # Dropping c loses less area than dropping b (b is the knee).
    assert hull_settings(points, 3) == [0, 2, 5]
    assert hull_settings(points, 2) == [0, 5]
    assert hull_settings(points, 1) == [5]
    with pytest.raises(ValueError, match="at_most"):
        hull_settings(points, 0)


def test_ranked_apgr_of_a_perfect_and_a_useless_score() -> None:
    strong = np.array([1.0, 1.0, 1.0, 1.0])
    weak = np.array([0.0, 1.0, 0.0, 1.0])
    shares = [0.25, 0.5, 0.75]
    perfect = ranked_apgr(np.array([1.0, 0.0, 1.0, 0.0]), strong, weak, shares)
    backwards = ranked_apgr(np.array([0.0, 1.0, 0.0, 1.0]), strong, weak, shares)
    # perfect: the gap is closed at share 0.5; curve 0, .5, 1, 1, 1 -> area 0.75 - 1/16 ...
    assert perfect == pytest.approx((0.25 * (0 + 0.5) + 0.25 * 1.5 + 0.25 * 2 + 0.25 * 2) / 2)
    assert backwards < 0.5 < perfect
    assert np.isnan(ranked_apgr(np.zeros(4), strong, strong, shares))
