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

**Labels never overlap.** Points close together would draw their labels over each other, so
each label is placed where its text box (estimated from its characters and the font size)
overlaps no label placed before, no point's marker, and stays inside the plot: the first free
one of a few places around its point (right, left, above, below, the diagonals, then the same
a line further out). Points are labelled in a fixed order (single models, the oracle, then
configurations; each by x, y and label), so the same file always gives the same picture.
A point with no free place is drawn without its label; its ``<title>`` and tooltip still say
what it is.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from orch.render import fmt_usd
from orch.ui._evalfile import EvalDoc

__all__ = [
    "HEIGHT",
    "LABEL_CHARS",
    "LABEL_SIZE",
    "WIDTH",
    "Box",
    "Plot",
    "PlotPoint",
    "PointLabel",
    "hull",
    "label_width",
    "plot_of",
]

WIDTH, HEIGHT = 880, 500
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 24, 20, 56
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")

LABEL_SIZE = 11
"""The labels' font size in px: ``svg.cq text.pt-label`` in ``static/ui.css`` (a test keeps the
two equal, since the boxes are estimated from it)."""
LABEL_CHARS = 40
"""A longer label is cut to this many characters (the rest is in its ``<title>``)."""
_ASCENT, _DESCENT = 1.07, 0.3
"""A line of text above and below its baseline, in em: the larger of the fonts ``system-ui``
usually is on Linux (getBBox measures DejaVu Sans at 0.91 and 0.27, Noto Sans is 1.07 and
0.29)."""
_RADIUS = {"config": 7.0, "oracle": 8.0}
"""A marker's radius by kind (5 for the others), as the template draws it."""
_STROKE = 1.5
"""What a marker's outline (2 px wide when hovered) adds around its radius."""
_GAP = 3.0
"""Between a marker and its label."""
_PAD = 2.0
"""Kept clear between label boxes (the labels' white halo, ui.css, is 1.5 px wide)."""
_LABELLED = {"single": 0, "oracle": 1, "config": 2}
"""The kinds of point that carry a label, in the order their labels are placed: the few
references first (a crowd of configurations, a sweep, would otherwise hide the names of the
models among it; each configuration is a link with its label in its tooltip)."""


@dataclass(frozen=True)
class Box:
    """A rectangle on the plot, in SVG units (y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, pad: float = 0.0) -> bool:
        """Whether the two share any area, or come closer than ``pad``."""
        return (
            self.x0 < other.x1 + pad
            and other.x0 < self.x1 + pad
            and self.y0 < other.y1 + pad
            and other.y0 < self.y1 + pad
        )

    def within(self, other: Box) -> bool:
        return (
            other.x0 <= self.x0
            and self.x1 <= other.x1
            and other.y0 <= self.y0
            and self.y1 <= other.y1
        )


@dataclass(frozen=True)
class PointLabel:
    """Where a point's label is drawn: ``<text x y text-anchor>``, and the box it may fill."""

    text: str
    """The label, cut to :data:`LABEL_CHARS` (text: the template escapes it)."""
    x: float
    y: float
    """The baseline."""
    anchor: str
    """``start``, ``middle`` or ``end``: which part of the text ``x`` is."""
    box: Box
    """The text's estimated box (the text drawn fits inside it)."""


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
    shown: PointLabel | None = None
    """Its label as drawn; None: no label (a curve's point, or no free place for one)."""

    @property
    def r(self) -> float:
        """The marker's radius."""
        return _RADIUS.get(self.kind, 5.0)

    def marker(self) -> Box:
        """The box the marker covers, outline included."""
        r = self.r + _STROKE
        return Box(self.x - r, self.y - r, self.x + r, self.y + r)


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


def label_width(text: str, size: float = LABEL_SIZE) -> float:
    """An upper estimate of ``text``'s width at ``size`` px: an average per character, more
    for the wide ones (DejaVu Sans draws ``m`` at 0.97 em, digits at 0.64 em, ``i`` at 0.28)."""
    em = 0.0
    for ch in text:
        if ch in "mwMW@%" or ord(ch) > 0xFFFF or unicodedata.east_asian_width(ch) in "WF":
            em += 1.05
        elif ch.isupper() or ch in "#&+<=>~":
            em += 0.84
        else:
            em += 0.64
    return em * size


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _places(p: PlotPoint) -> list[tuple[str, float, float]]:
    """Where ``p``'s label may go, best first: (anchor, x, top of the box)."""
    height = (_ASCENT + _DESCENT) * LABEL_SIZE
    out = []
    for d in (p.r + _STROKE + _GAP, p.r + _STROKE + _GAP + height):
        above, below, middle = p.y - d - height, p.y + d, p.y - height / 2
        out += [
            ("start", p.x + d, middle),  # right
            ("end", p.x - d, middle),  # left
            ("middle", p.x, above),
            ("middle", p.x, below),
            ("start", p.x + d, above),
            ("end", p.x - d, above),
            ("start", p.x + d, below),
            ("end", p.x - d, below),
        ]
    return out


def _label(p: PlotPoint, area: Box, taken: list[Box], markers: list[Box]) -> PointLabel | None:
    """The first place for ``p``'s label that is inside ``area`` and clear of every box in
    ``taken`` and ``markers`` (None when there is none)."""
    text = _cut(p.label)
    if not text:
        return None
    width, height = label_width(text), (_ASCENT + _DESCENT) * LABEL_SIZE
    for anchor, x, top in _places(p):
        left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        box = Box(left, top, left + width, top + height)
        if not box.within(area):
            continue
        if any(box.overlaps(b, _PAD) for b in taken) or any(box.overlaps(m) for m in markers):
            continue
        baseline = round(top + _ASCENT * LABEL_SIZE, 2)
        return PointLabel(text, round(x, 2), baseline, anchor, box)
    return None


def _place_labels(plot: Plot) -> None:
    """Give each labelled point of ``plot`` its label's place (see the module docstring)."""
    area = Box(plot.left + _PAD, plot.top + _PAD, plot.right - _PAD, plot.bottom - _PAD)
    markers = [p.marker() for p in plot.points]
    order = sorted(
        (i for i, p in enumerate(plot.points) if p.kind in _LABELLED),
        key=lambda i: (
            _LABELLED[plot.points[i].kind],
            plot.points[i].x,
            plot.points[i].y,
            plot.points[i].label,
        ),
    )
    taken: list[Box] = []
    for i in order:
        shown = _label(plot.points[i], area, taken, markers)
        if shown is not None:
            taken.append(shown.box)
            plot.points[i] = dataclasses.replace(plot.points[i], shown=shown)


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
    _place_labels(plot)
    return plot
