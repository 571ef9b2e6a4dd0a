"""The HTML report of an evaluation file (``orch report EVAL.json``): one self-contained page.

It shows what the file holds: what was evaluated and how to regenerate it, the cost-quality
plot (single models as points, the zero router's hull, the oracle, each curve's points and
hull with its AIQ, on a log cost axis), a summary row per configuration, the reference
points, the curves, the file's own tables, and per configuration its first runs with their
run ids, so that every number leads to the recorded runs behind it (``orch show RUN``).

The plot needs matplotlib (the ``report`` extra); without it the page says how to get it
and shows everything else. The plot is drawn with the Agg canvas (no GUI, no global pyplot
state) and embedded as a PNG ``data:`` URI without a timestamp or version, so the same file
renders to the same bytes. Pure rendering: it never reads the store or the dataset.
"""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orch.render import esc, fmt_usd, kv_table, page, table, value_html
from routers.eval._evalfile import EvalConfig, EvalFile, load
from routers.eval._metrics import Point, ndch

__all__ = ["PLOT_EXTRA", "cost_quality_png", "render_eval_report", "render_eval_report_file"]

PLOT_EXTRA = "pip install 'orch[report]'"
"""What adds the plots (matplotlib) to a report."""

_RUNS_SHOWN = 10


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return esc(value)
    return esc(f"{value:.{digits}f}")


def _num(text: str) -> str:
    return f'<td class="num">{text}</td>'


def _summary(c: EvalConfig, ev: EvalFile) -> dict[str, Any]:
    """The configuration's summary as saved, else computed from its runs."""
    return c.summary or c.report(ev.dataset, ev.split).summary()


# -- the plot ------------------------------------------------------------------------------


def _hull_line(hull: Sequence[Point], right: float) -> tuple[list[float], list[float]]:
    """The hull as a polyline dense enough to stay straight in linear cost on a log axis,
    extended flat to ``right`` (mixing can always spend less of a budget)."""
    xs: list[float] = []
    ys: list[float] = []
    for a, b in itertools.pairwise(hull):
        for i in range(24):
            t = i / 24
            xs.append(a.cost + (b.cost - a.cost) * t)
            ys.append(a.quality + (b.quality - a.quality) * t)
    xs.append(hull[-1].cost)
    ys.append(hull[-1].quality)
    if right > hull[-1].cost:
        xs.append(right)
        ys.append(hull[-1].quality)
    return xs, ys


def _aiq_label(label: str, aiq: float | None) -> str:
    return f"{label} (AIQ {aiq:.4f})" if aiq is not None else label


def cost_quality_png(ev: EvalFile) -> bytes | None:
    """The cost-quality plot as PNG bytes; None without matplotlib or without any point."""
    try:
        import matplotlib
    except ImportError:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    refs = ev.references
    singles = [p.point() for p in refs.single_models]
    zero = [p.point() for p in refs.zero_router]
    curves = [(c, [p.point() for p in c.points]) for c in ev.curves if c.points]
    # Without curves, the configurations themselves are the router's points.
    loose = []
    if not curves:
        for c in ev.configs:
            s = _summary(c, ev)
            if isinstance(s.get("cost_per_task_usd"), int | float) and "accuracy" in s:
                loose.append(Point(float(s["cost_per_task_usd"]), float(s["accuracy"]), c.label))
    oracle = refs.oracle.point() if refs.oracle is not None else None
    every = singles + zero + [p for _, pts in curves for p in pts] + loose
    every += [oracle] if oracle is not None else []
    if not every:
        return None
    right = max(p.cost for p in every)
    if refs.cost_range is not None:
        right = max(right, refs.cost_range[1])
    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        fig = Figure(figsize=(9, 5.6), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if zero:
            xs, ys = _hull_line(zero, right)
            ax.plot(
                xs, ys, "--", color="0.45", label=_aiq_label("zero router", refs.zero_router_aiq)
            )
        if singles:
            ax.scatter(
                [p.cost for p in singles],
                [p.quality for p in singles],
                marker="o",
                color="0.25",
                zorder=3,
                label="single models",
            )
            for p in singles:
                ax.annotate(p.label, (p.cost, p.quality), textcoords="offset points", xytext=(5, 4))
        for curve, pts in curves:
            hull = ndch(pts)
            xs, ys = _hull_line(hull, right)
            (line,) = ax.plot(xs, ys, "-", label=_aiq_label(curve.label, curve.aiq))
            ax.scatter(
                [p.cost for p in pts], [p.quality for p in pts], color=line.get_color(), zorder=3
            )
            for p in pts:
                if p.label:
                    ax.annotate(
                        p.label,
                        (p.cost, p.quality),
                        textcoords="offset points",
                        xytext=(5, -10),
                        color=line.get_color(),
                        fontsize=8,
                    )
        if loose:
            ax.scatter(
                [p.cost for p in loose],
                [p.quality for p in loose],
                marker="x",
                zorder=3,
                label="configurations",
            )
            for p in loose:
                ax.annotate(
                    p.label, (p.cost, p.quality), textcoords="offset points", xytext=(5, -9)
                )
        if oracle is not None:
            ax.scatter(
                [oracle.cost],
                [oracle.quality],
                marker="*",
                s=160,
                color="#c28a00",
                zorder=4,
                label="oracle",
            )
        positive = [p.cost for p in every if p.cost > 0]
        if positive and len(positive) == len(every):
            ax.set_xscale("log")
        elif positive:  # a free point (cost 0) has no place on a log axis: linear near 0
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlabel("mean cost per task (USD, log scale)")
        ax.set_ylabel("quality (mean score)")
        # The page heading carries the title; a long one would be cut off in the figure.
        ax.set_title(f"cost and quality: {ev.dataset}, {ev.split} split, {ev.tasks} tasks")
        ax.legend(loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        # No Software entry: the PNG is a function of the file alone, not of the version.
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _plot(ev: EvalFile) -> str:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return (
            '<p class="note" id="plot-missing">The cost-quality plot needs matplotlib: '
            f"<code>{esc(PLOT_EXTRA)}</code> adds it. Everything else is below.</p>"
        )
    png = cost_quality_png(ev)
    if png is None:
        return '<p class="note" id="plot-missing">No points to plot in this file.</p>'
    data = base64.b64encode(png).decode()
    return (
        '<figure id="cost-quality">'
        f'<img class="plot" id="cost-quality-plot" alt="cost-quality plot of {esc(ev.title)}" '
        f'src="data:image/png;base64,{data}">'
        "<figcaption>Single models, the zero router's hull (random mixing of single models), "
        "the oracle, and each router's points with their hull; AIQ in the legend.</figcaption>"
        "</figure>"
    )


# -- the tables ----------------------------------------------------------------------------


def _configs(ev: EvalFile) -> str:
    if not ev.configs:
        return "<p>No configurations in this file.</p>"
    rows = []
    for c in ev.configs:
        s = _summary(c, ev)
        modes = s.get("modes") or {}
        abw = s.get("agreement_but_wrong")
        rows.append(
            [
                esc(c.label),
                esc(c.router),
                value_html(dict(sorted(c.params.items()))) if c.params else "-",
                _num(_f(s.get("tasks"), 0)),
                _num(_f(s.get("accuracy"))),
                _num(esc(fmt_usd(s.get("cost_per_task_usd"), 8))),
                _num(esc(fmt_usd(s.get("cost_usd"), 6))),
                esc(", ".join(f"{k} {v:.1%}" for k, v in sorted(modes.items())) or "-"),
                _num(esc("-" if abw is None else f"{abw:.1%}")),
                _num(_f(s.get("failed"), 0)),
            ]
        )
    columns = [
        "configuration",
        "router",
        "parameters",
        "tasks",
        "accuracy",
        "cost per task",
        "total cost",
        "modes",
        "agreement-but-wrong",
        "failed",
    ]
    return table(columns, rows, id="configs")


def _references(ev: EvalFile) -> str:
    refs = ev.references
    rows: list[list[str]] = []
    for p in refs.single_models:
        rows.append(["single model", esc(p.label), _num(_f(p.quality)), _num(fmt_usd(p.cost, 8))])
    for p in refs.zero_router:
        rows.append(
            ["zero router hull", esc(p.label), _num(_f(p.quality)), _num(fmt_usd(p.cost, 8))]
        )
    if refs.oracle is not None:
        o = refs.oracle
        rows.append(
            ["oracle", esc(o.label or "oracle"), _num(_f(o.quality)), _num(fmt_usd(o.cost, 8))]
        )
    html = (
        table(["reference", "label", "quality", "cost per task"], rows, id="references")
        if rows
        else '<p id="references">No reference points in this file.</p>'
    )
    facts = []
    if refs.zero_router_aiq is not None:
        facts.append(("zero router AIQ", _f(refs.zero_router_aiq)))
    if refs.cost_range is not None:
        lo, hi = refs.cost_range
        facts.append(("AIQ cost range", esc(f"{fmt_usd(lo, 8)} to {fmt_usd(hi, 8)} per task")))
    if refs.note:
        facts.append(("note", esc(refs.note)))
    return html + (kv_table(facts, id="reference-facts") if facts else "")


def _curves(ev: EvalFile) -> str:
    if not ev.curves:
        return ""
    rows = []
    for c in ev.curves:
        pts = "; ".join(
            f"{p.label or '?'} ({fmt_usd(p.cost, 8)}, {p.quality:.4f})" for p in c.points
        )
        span = (
            "-"
            if c.cost_range is None
            else f"{fmt_usd(c.cost_range[0], 8)} to {fmt_usd(c.cost_range[1], 8)}"
        )
        rows.append([esc(c.label), _num(_f(c.aiq)), esc(span), esc(pts)])
    return "<h2>Curves</h2>" + table(["curve", "AIQ", "cost range", "points"], rows, id="curves")


def _cell(value: str | float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | str):
        return esc(value)
    return _num(esc(f"{value:.6g}" if isinstance(value, float) else value))


def _tables(ev: EvalFile) -> str:
    parts = []
    for i, t in enumerate(ev.tables):
        rows = [[_cell(v) for v in row] for row in t.rows]
        parts.append(table(t.columns, rows, id=f"table-{i}", cls="eval-table", caption=t.title))
        if t.note:
            parts.append(f'<p class="sub">{esc(t.note)}</p>')
    return ("<h2>Tables</h2>" + "\n".join(parts)) if parts else ""


def _runs(ev: EvalFile) -> str:
    store = f" --store {ev.store}" if ev.store else ""
    parts = []
    for c in ev.configs:
        shown = c.runs[:_RUNS_SHOWN]
        rows = [
            [
                esc(r.task),
                f'<td class="mono">{esc(r.run_id)}</td>',
                esc("ok" if r.ok else "failed"),
                _num(_f(r.score)),
                _num(esc(fmt_usd(r.cost_usd, 8))),
                esc(r.mode or "-"),
                _num(_f(r.sigma, 2)),
                esc(", ".join(r.chosen) or "-"),
                esc(r.answer if r.answer is not None else "-"),
                esc(r.error or ""),
            ]
            for r in shown
        ]
        columns = [
            "task",
            "run id",
            "run",
            "score",
            "cost",
            "mode",
            "σ",
            "chosen",
            "answer",
            "error",
        ]
        first = f"orch show {shown[0].run_id}{store}" if shown else ""
        parts.append(
            f'<details class="config-runs" data-config="{esc(c.label)}">'
            f"<summary>{esc(c.label)}: first {len(shown)} of {len(c.runs)} runs</summary>"
            + table(columns, rows)
            + (f'<p class="sub">Open one: <code>{esc(first)}</code></p>' if first else "")
            + "</details>"
        )
    return "\n".join(parts)


def render_eval_report(ev: EvalFile) -> str:
    """The report page of the evaluation ``ev`` (see the module docstring)."""
    meta = [
        ("dataset", esc(ev.dataset)),
        ("split", esc(ev.split)),
        ("tasks", esc(ev.tasks)),
        ("seed", esc(ev.seed)),
        ("configurations", esc(len(ev.configs))),
        ("store", f"<code>{esc(ev.store)}</code>" if ev.store else "-"),
        ("regenerate", f"<code>{esc(ev.command)}</code>" if ev.command else "-"),
    ]
    notes = "".join(f"<li>{esc(n)}</li>" for n in ev.notes)
    body = [
        f"<h1>{esc(ev.title)}</h1>",
        f'<p class="sub">evaluation on {esc(ev.dataset)} ({esc(ev.split)}, {ev.tasks} tasks) · '
        f"{esc(ev.format)}</p>",
        kv_table(meta, id="eval-meta"),
        f'<ul id="notes">{notes}</ul>' if notes else "",
        '<section id="plot"><h2>Cost and quality</h2>',
        _plot(ev),
        "</section>",
        '<section id="configs-section"><h2>Configurations</h2>',
        _configs(ev),
        "</section>",
        '<section id="references-section"><h2>Reference points</h2>',
        _references(ev),
        "</section>",
        _curves(ev),
        _tables(ev),
        '<section id="runs"><h2>Runs behind the numbers</h2>',
        '<p class="sub">Each task of each configuration is a recorded run; the first few of '
        "each are listed with their run ids.</p>",
        _runs(ev),
        "</section>",
    ]
    return page(f"orch evaluation: {ev.title}", "\n".join(b for b in body if b), kind="evaluation")


def render_eval_report_file(path: Path) -> str:
    """The report page of the evaluation file at ``path``: the ``orch.reports`` renderer of
    format ``orch.eval-report/1`` (what ``orch report FILE.json`` calls)."""
    return render_eval_report(load(path))
