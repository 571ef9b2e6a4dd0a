"""The cost-quality plot of an evaluation, laid out by the server for an inline SVG.

What ``orch report`` plots, as shapes a template draws (no plotting library, nothing from a
CDN, no script needed): the single models as points, the zero router's hull (random mixing of
single models, dashed), the oracle, each curve's hull, and every **configuration** as a point
that links to its runs (``/?eval=FILE&config=LABEL``, the runs list showing exactly that
configuration's runs). Each point carries its text (configuration, quality, cost per task)
for a ``<title>``, which browsers show on hover with no script, and for the page's tooltip.

Cost is on a log axis when every cost is above zero (as in the report), else linear. A hull
is drawn as a polyline dense enough to stay straight in linear cost on a log axis. Pure
layout: every number comes from the file; labels stay text for the template to escape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from orch.render import fmt_usd
from orch.ui._evalfile import EvalDoc

__all__ = ["HEIGHT", "WIDTH", "Plot", "PlotPoint", "hull", "plot_of"]

WIDTH, HEIGHT = 880, 500
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 24, 20, 56
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class PlotPoint:
    kind: str
    """``config``, ``single``, ``oracle`` or ``curve``."""
    label: str
    cost: float
    quality: float
    x: float
    y: float
    tip: str
    """What hovering shows: the label and the point."""
    href: str | None = None
    colour: str = "#333333"
    index: int = 0


@dataclass(frozen=True)
class Line:
    kind: str
    label: str
    points: str
    """SVG ``points`` (``x,y x,y ...``)."""
    colour: str = "#777777"


@dataclass(frozen=True)
class Tick:
    at: float
    text: str


@dataclass
class Plot:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    right: int = WIDTH - _RIGHT
    top: int = _TOP
    bottom: int = HEIGHT - _BOTTOM
    log: bool = True
    points: list[PlotPoint] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    xticks: list[Tick] = field(default_factory=list)
    yticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, colour, text) per entry."""


def hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing convex hull of (cost, quality) points, cheapest first: the upper
    hull of the points that lose no quality to a cheaper one (``routers.eval.ndch``)."""
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    rising: list[tuple[float, float]] = []
    for p in ordered:
        if not rising or p[1] > rising[-1][1]:
            rising.append(p)
    out: list[tuple[float, float]] = []
    for p in rising:
        while len(out) >= 2:
            (ox, oy), (ax, ay) = out[-2], out[-1]
            if (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox) < 0:
                break
            out.pop()  # below the segment from out[-2] to p: mixing those does better
        out.append(p)
    return out


def _tip(label: str, cost: float, quality: float, what: str) -> str:
    return f"{label} ({what}): quality {quality:.4f}, cost per task {fmt_usd(cost, 8)}"


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool) -> None:
        self.log, self.a, self.b = log, a, b
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return round(self.a + (t - self.lo) / (self.hi - self.lo) * (self.b - self.a), 2)


def _span(values: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        return (lo / 1.6, hi * 1.6) if hi / lo < 1e12 else (lo, hi)
    pad = (hi - lo) * 0.06 or max(abs(hi) * 0.1, 0.01)
    return lo - pad, hi + pad


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5) if math.log10(hi / lo) < 3 else (1,):
            v = m * 10.0**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def _usd(v: float) -> str:
    return f"${v:.3g}" if v else "$0"


def _densify(hull_pts: Sequence[tuple[float, float]], right: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(hull_pts):
        for i in range(24):
            t = i / 24
            out.append((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
    out.append(hull_pts[-1])
    if right > hull_pts[-1][0]:
        out.append((right, hull_pts[-1][1]))
    return out


def plot_of(doc: EvalDoc, name: str) -> Plot | None:
    """The plot of evaluation file ``name`` (None when it holds no point to draw)."""
    refs = doc.references
    configs = [(i, c, c.point()) for i, c in enumerate(doc.configs)]
    singles = [p for p in refs.single_models if _finite(p.cost, p.quality)]
    zero = [(p.cost, p.quality) for p in refs.zero_router if _finite(p.cost, p.quality)]
    oracle = refs.oracle if refs.oracle and _finite(refs.oracle.cost, refs.oracle.quality) else None
    curves = [
        (c, [p for p in c.points if _finite(p.cost, p.quality)]) for c in doc.curves if c.points
    ]
    every = (
        [(p.cost, p.quality) for p in singles]
        + zero
        + [pt for _, _, pt in configs if pt is not None]
        + [(p.cost, p.quality) for _, pts in curves for p in pts]
        + ([(oracle.cost, oracle.quality)] if oracle else [])
    )
    if not every:
        return None
    plot = Plot()
    costs = [c for c, _ in every]
    right = max(costs)
    if refs.cost_range is not None and _finite(*refs.cost_range):
        right = max(right, refs.cost_range[1])
        costs.append(right)
    plot.log = min(costs) > 0
    xlo, xhi = _span(costs, plot.log)
    ylo, yhi = _span([q for _, q in every], False)
    sx = _Scale(xlo, xhi, plot.left, plot.right, plot.log)
    sy = _Scale(ylo, yhi, plot.bottom, plot.top, False)
    xs = _log_ticks(xlo, xhi) if plot.log else _nice_ticks(xlo, xhi)
    plot.xticks = [Tick(sx(v), _usd(v)) for v in xs]
    plot.yticks = [Tick(sy(v), f"{v:.3g}") for v in _nice_ticks(ylo, yhi)]

    def polyline(pts: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{sx(c)},{sy(q)}" for c, q in pts)

    if zero:
        plot.lines.append(Line("zero", "zero router", polyline(_densify(hull(zero), right))))
        aiq = f" (AIQ {refs.zero_router_aiq:.4f})" if refs.zero_router_aiq is not None else ""
        plot.legend.append(("zero", "#777777", f"zero router hull{aiq}"))
    for i, (curve, pts) in enumerate(curves):
        colour = _PALETTE[i % len(_PALETTE)]
        if pts:
            drawn = _densify(hull([(p.cost, p.quality) for p in pts]), right)
            plot.lines.append(Line("curve", curve.label, polyline(drawn), colour))
        aiq = f" (AIQ {curve.aiq:.4f})" if curve.aiq is not None else ""
        plot.legend.append(("curve", colour, f"{curve.label}{aiq}"))
        labels = {c.label for c in doc.configs}
        for p in pts:  # a curve's point that is no configuration of the file is drawn alone
            if p.label not in labels:
                plot.points.append(
                    PlotPoint(
                        "curve",
                        p.label,
                        p.cost,
                        p.quality,
                        sx(p.cost),
                        sy(p.quality),
                        _tip(p.label or curve.label, p.cost, p.quality, curve.label),
                        None,
                        colour,
                    )
                )
    for p in singles:
        plot.points.append(
            PlotPoint(
                "single",
                p.label,
                p.cost,
                p.quality,
                sx(p.cost),
                sy(p.quality),
                _tip(p.label, p.cost, p.quality, "single model"),
            )
        )
    if singles:
        plot.legend.append(("single", "#333333", "single models"))
    for i, c, pt in configs:
        if pt is None:
            continue
        href = "/?" + urlencode({"eval": name, "config": c.label})
        plot.points.append(
            PlotPoint(
                "config",
                c.label,
                pt[0],
                pt[1],
                sx(pt[0]),
                sy(pt[1]),
                _tip(c.label, pt[0], pt[1], f"configuration, {len(c.runs)} runs"),
                href,
                "#e6550d",
                i,
            )
        )
    if any(pt is not None for _, _, pt in configs):
        plot.legend.append(("config", "#e6550d", "configurations (click one for its runs)"))
    if oracle is not None:
        plot.points.append(
            PlotPoint(
                "oracle",
                oracle.label or "oracle",
                oracle.cost,
                oracle.quality,
                sx(oracle.cost),
                sy(oracle.quality),
                _tip(oracle.label or "oracle", oracle.cost, oracle.quality, "oracle"),
                None,
                "#c28a00",
            )
        )
        plot.legend.append(("oracle", "#c28a00", "oracle"))
    return plot
