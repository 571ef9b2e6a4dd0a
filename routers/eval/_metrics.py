"""Measures of routers on recorded data: cost-quality curves, AIQ, APGR, CPT, McNemar.

From RouterBench (Hu et al. 2024) and RouteLLM (Ong et al. 2024), as the design notes give
them:

* a **point** is one router setting's (cost, quality); mixing two settings at random reaches
  every point on the segment between them;
* the **non-decreasing convex hull** (NDCH) of a router's points is their upper convex hull
  by cost with the points that lose quality dropped, extended flat to the largest cost;
* **AIQ** is the area under the NDCH between the smallest and the largest cost, divided by
  that range; routers compared share one cost range. The **zero router** is the NDCH of the
  single models' points (random mixing, no learning): a router must beat it;
* **PGR** = (q - q_weak) / (q_strong - q_weak); **APGR** is its mean over the share of
  strong-model calls from 0 to 1; **CPT(x%)** is the share of strong calls needed to recover
  x% of the gap;
* **McNemar's test** compares two configurations on the same tasks by the tasks where
  exactly one of them is right (an exact two-sided binomial test).

Pure functions of numbers: no I/O, no randomness.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "McNemar",
    "Point",
    "aiq",
    "apgr",
    "cpt",
    "mcnemar",
    "ndch",
    "pgr",
]


@dataclass(frozen=True, order=True)
class Point:
    """One router setting on the cost-quality plane."""

    cost: float
    quality: float
    label: str = ""


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a.cost - o.cost) * (b.quality - o.quality) - (a.quality - o.quality) * (b.cost - o.cost)


def ndch(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing convex hull: the upper hull by cost of the points that do not lose
    quality to a cheaper one, from the cheapest point on (the flat extension to a larger cost
    is :func:`aiq`'s business)."""
    if not points:
        raise ValueError("ndch needs at least one point")
    for p in points:
        if not (math.isfinite(p.cost) and math.isfinite(p.quality)):
            raise ValueError(f"point {p} is not finite")
    # Cheapest first; at equal cost the best quality. Then drop the points that a cheaper
    # (or equally cheap) point beats: they lose quality for more money.
    ordered = sorted(points, key=lambda p: (p.cost, -p.quality))
    rising: list[Point] = []
    for p in ordered:
        if not rising or p.quality > rising[-1].quality:
            rising.append(p)
    hull: list[Point] = []
    for p in rising:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()  # below the segment from hull[-2] to p: mixing those two does better
        hull.append(p)
    return hull


def _quality_at(hull: Sequence[Point], cost: float) -> float:
    """The hull's quality at ``cost`` (flat before the first and after the last point)."""
    if cost <= hull[0].cost:
        return hull[0].quality if cost == hull[0].cost else float("nan")
    for a, b in itertools.pairwise(hull):
        if a.cost <= cost <= b.cost:
            if b.cost == a.cost:
                return max(a.quality, b.quality)
            # The fraction first: with costs near the smallest float, multiplying before
            # dividing underflows and the result can leave the segment.
            t = min(1.0, max(0.0, (cost - a.cost) / (b.cost - a.cost)))
            return a.quality + (b.quality - a.quality) * t
    return hull[-1].quality


def aiq(points: Sequence[Point], cost_range: tuple[float, float] | None = None) -> float:
    """Average improvement in quality: the area under the NDCH over ``cost_range`` (default
    the points' own range) divided by its width. Below the cheapest point there is no
    router, so the range must start at or after it; past the last point the hull is flat."""
    hull = ndch(points)
    lo, hi = cost_range if cost_range is not None else (hull[0].cost, max(p.cost for p in points))
    if hi < lo:
        raise ValueError(f"cost range ({lo}, {hi}) is reversed")
    if lo < hull[0].cost - 1e-12:
        raise ValueError(
            f"cost range starts at {lo}, below the router's cheapest point {hull[0].cost}: "
            "no setting of the router reaches that cost"
        )
    if hi == lo:
        return _quality_at(hull, lo)
    knots = sorted({lo, hi, *(p.cost for p in hull if lo < p.cost < hi)})
    area = 0.0
    for a, b in itertools.pairwise(knots):
        area += (_quality_at(hull, a) + _quality_at(hull, b)) / 2 * (b - a)
    return area / (hi - lo)


def pgr(quality: float, weak: float, strong: float) -> float:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong one's."""
    if strong == weak:
        raise ValueError("PGR is undefined when the strong and weak models score the same")
    return (quality - weak) / (strong - weak)


def _curve(share_quality: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    curve = sorted(share_quality)
    if not curve or curve[0][0] > 0 or curve[-1][0] < 1:
        raise ValueError(
            "the curve must span strong-call shares 0 to 1; add the all-weak (0) and "
            "all-strong (1) settings"
        )
    return curve


def apgr(share_quality: Sequence[tuple[float, float]], weak: float, strong: float) -> float:
    """Mean PGR over the strong-call share from 0 to 1 (trapezoids between the settings)."""
    curve = _curve(share_quality)
    area = 0.0
    for (s0, q0), (s1, q1) in itertools.pairwise(curve):
        area += (pgr(q0, weak, strong) + pgr(q1, weak, strong)) / 2 * (s1 - s0)
    return area


def cpt(
    share_quality: Sequence[tuple[float, float]], weak: float, strong: float, target: float
) -> float | None:
    """The least strong-call share at which PGR reaches ``target`` (0.5 for CPT(50%)),
    interpolated between settings; None if no setting reaches it."""
    curve = _curve(share_quality)
    prev: tuple[float, float] | None = None
    for share, quality in curve:
        g = pgr(quality, weak, strong)
        if g >= target:
            if prev is None:
                return share
            s0, g0 = prev
            return s0 + (share - s0) * (target - g0) / (g - g0) if g != g0 else share
        prev = (share, g)
    return None


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of configurations A and B on the same tasks."""

    only_a: int
    """Tasks A got right and B wrong."""
    only_b: int
    p_value: float
    """Exact two-sided binomial p-value of 'A and B are equally good'."""


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """McNemar's exact test on two configurations' per-task correctness."""
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length ({len(a)} vs {len(b)})")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return McNemar(0, 0, 1.0)
    k = min(only_a, only_b)
    # Exact integers: a tail of binomial(n, 1/2), doubled, capped at 1.
    tail = sum(math.comb(n, i) for i in range(k + 1))
    p = min(1.0, 2 * tail / 2**n)
    return McNemar(only_a, only_b, p)
