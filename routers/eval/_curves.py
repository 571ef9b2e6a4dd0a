"""Curves of a router's settings against the references, as the evaluations report them.

* :func:`aiq_curve`: a router's cost-quality points and their AIQ over the range from the
  cheaper of its cheapest hull point and the cheapest single model to the dearest single
  model, the range where it can be compared with the zero router
  (:func:`zero_router_aiq` gives the zero router's AIQ over the same range);
* :func:`strong_share_curve`: a two-model router's settings as (share of tasks sent to the
  strong model, quality) with the all-weak and all-strong ends (RouteLLM's curve), whose
  APGR and CPT :class:`StrongShareCurve` gives.

``orch eval`` and the reproductions compute their curves here, so that the same settings give
the same figures in both. Pure functions of reports and references: no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routers.eval._evalfile import CurveRecord, PointRecord, References
from routers.eval._harness import EvalReport
from routers.eval._metrics import Point, aiq, apgr, cpt, ndch

__all__ = [
    "StrongShareCurve",
    "aiq_curve",
    "strong_share",
    "strong_share_curve",
    "zero_router_aiq",
]


def aiq_curve(label: str, points: Sequence[Point], references: References) -> CurveRecord | None:
    """The curve of ``points`` with its AIQ over ``[max(cheapest single model, the points'
    cheapest hull point), dearest single model]``; None when the references have no zero
    router (no costs recorded) or the points are all dearer than every single model."""
    if not points or not references.zero_router or references.cost_range is None:
        return None
    lo = max(references.cost_range[0], ndch(points)[0].cost)
    hi = references.cost_range[1]
    if lo >= hi:  # one point dearer than every model: no range to compare over
        return None
    return CurveRecord(
        label=label,
        points=[PointRecord.of(p) for p in points],
        aiq=aiq(points, (lo, hi)),
        cost_range=(lo, hi),
    )


def zero_router_aiq(references: References, cost_range: tuple[float, float]) -> float:
    """The zero router's AIQ over ``cost_range`` (a curve's, to compare it with)."""
    return aiq([p.point() for p in references.zero_router], cost_range)


def strong_share(report: EvalReport, strong: str) -> float:
    """The share of the report's tasks routed to the model ``strong`` alone."""
    return sum(1 for r in report.results if r.chosen == [strong]) / report.tasks


@dataclass(frozen=True)
class StrongShareCurve:
    """A two-model router's curve: (strong-call share, quality) per setting, the all-weak
    ``(0, weak_quality)`` and all-strong ``(1, strong_quality)`` ends first."""

    weak_quality: float
    strong_quality: float
    points: tuple[tuple[float, float], ...]

    def apgr(self) -> float:
        """The mean performance gap recovered over strong-call shares 0 to 1."""
        return apgr(self.points, self.weak_quality, self.strong_quality)

    def cpt(self, target: float) -> float | None:
        """The least strong-call share that recovers ``target`` of the gap (0.5: CPT(50%))."""
        return cpt(self.points, self.weak_quality, self.strong_quality, target)


def strong_share_curve(
    reports: Sequence[EvalReport], strong: str, weak_quality: float, strong_quality: float
) -> StrongShareCurve:
    """The curve of ``reports`` (one per setting, in order) of a router between two models,
    ``strong`` the one whose share of tasks is counted."""
    settings = [(strong_share(r, strong), r.accuracy) for r in reports]
    return StrongShareCurve(
        weak_quality, strong_quality, ((0.0, weak_quality), (1.0, strong_quality), *settings)
    )
