"""The curves evaluations report: a router's AIQ against the zero router's over the same cost
range, and a two-model router's strong-share curve with its APGR and CPT, on figures worked
out by hand."""

from __future__ import annotations

import pytest

from routers.eval import Point, TaskResult, aiq_curve, strong_share_curve, zero_router_aiq
from routers.eval._evalfile import PointRecord, References
from routers.eval._harness import EvalReport


def references() -> References:
    """Two single models, cheap (0.001, 0.5) and dear (0.01, 1.0): the zero router's hull."""
    hull = [PointRecord(label="cheap", cost=0.001, quality=0.5)]
    hull.append(PointRecord(label="dear", cost=0.01, quality=1.0))
    return References(single_models=hull, zero_router=hull, cost_range=(0.001, 0.01))


def test_the_aiq_curve_starts_at_the_routers_cheapest_point_and_ends_at_the_dearest_model() -> None:
    points = [Point(0.002, 0.9, "a"), Point(0.005, 1.0, "b"), Point(0.004, 0.8, "dominated")]
    curve = aiq_curve("router", points, references())
    assert curve is not None and curve.label == "router"
    assert curve.cost_range == (0.002, 0.01)
    assert [p.label for p in curve.points] == ["a", "b", "dominated"]  # every point, as given
    # Hull (0.002, 0.9) -> (0.005, 1.0), flat to 0.01: (0.95 * 0.003 + 1.0 * 0.005) / 0.008.
    assert curve.aiq == pytest.approx(0.98125)
    # The zero router's line from (0.001, 0.5) to (0.01, 1.0), averaged over [0.002, 0.01].
    assert zero_router_aiq(references(), (0.002, 0.01)) == pytest.approx((0.5 + 0.5 / 9 + 1) / 2)


def test_no_curve_without_a_range_to_compare_over() -> None:
    assert aiq_curve("dear", [Point(0.02, 1.0)], references()) is None  # dearer than every model
    assert aiq_curve("at the top", [Point(0.01, 1.0)], references()) is None  # a range of 0
    no_costs = References(note="dataset 'x' records no cost: there is no zero router")
    assert aiq_curve("router", [Point(0.002, 0.9)], no_costs) is None
    assert aiq_curve("nothing", [], references()) is None
    below = aiq_curve("cheaper than every model", [Point(0.0005, 0.4)], references())
    assert below is not None and below.cost_range == (0.001, 0.01)  # from the cheapest model


def result(task: int, chosen: str, score: float) -> TaskResult:
    return TaskResult(
        task=f"t{task}",
        run_id=f"r{task}",
        root_hash=None,
        ok=True,
        score=score,
        cost_usd=0.0,
        calls=[(chosen, 0)],
        answer="A",
        chosen=[chosen],
        mode=None,
        sigma=None,
        seconds=0.0,
    )


def report(picks: list[tuple[str, float]]) -> EvalReport:
    out = EvalReport(dataset="d", split="test", router="knn")
    out.results = [result(i, model, score) for i, (model, score) in enumerate(picks)]
    return out


def test_the_strong_share_curve_gives_apgr_and_cpt() -> None:
    # Half the tasks to the strong model at quality 0.9, between weak 0.5 and strong 1.0.
    half = report([("strong", 1.0), ("strong", 1.0), ("weak", 1.0), ("weak", 0.6)])
    curve = strong_share_curve([half], "strong", 0.5, 1.0)
    assert curve.points == ((0.0, 0.5), (1.0, 1.0), (0.5, 0.9))
    # PGR 0, 0.8, 1 at shares 0, 0.5, 1: (0 + 0.8) / 2 * 0.5 + (0.8 + 1) / 2 * 0.5.
    assert curve.apgr() == pytest.approx(0.65)
    assert curve.cpt(0.5) == pytest.approx(0.5 * 0.5 / 0.8)
    assert curve.cpt(0.9) == pytest.approx(0.75)
    never = strong_share_curve([report([("weak", 0.0)] * 4)], "strong", 0.5, 1.0)
    assert never.points[2] == (0.0, 0.0) and never.cpt(1.0) == 1.0
