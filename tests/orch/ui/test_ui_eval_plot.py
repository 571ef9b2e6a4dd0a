"""The cost-quality plot's labels (``orch.ui._eval_plot``): wherever the points crowd, no label
box overlaps another label or any point's marker, every box stays inside the plot, the layout
is the same for the same file (and for its configurations in another order), and a point
whose label found no place is still drawn with its ``<title>``.

The boxes checked are the layout's own estimates; the browser test (test_ui_browser.py) checks
the boxes chromium draws.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conftest import MakeClient
from hypothesis import given, settings
from hypothesis import strategies as st

from orch.ui._eval_plot import LABEL_CHARS, LABEL_SIZE, Box, Plot, plot_of
from orch.ui._evalfile import EvalDoc
from routers.eval import _evalfile as ef
from traces import MemoryStore

UI_CSS = Path(__file__).resolve().parents[3] / "orch" / "ui" / "static" / "ui.css"


def doc_of(
    configs: list[tuple[str, float, float]],
    singles: Sequence[tuple[str, float, float]] = (),
    oracle: tuple[float, float] | None = None,
) -> EvalDoc:
    """An evaluation as the UI reads it: configurations and single models at (cost, quality)."""
    raw: dict[str, Any] = {
        "format": "orch.eval-report/1",
        "title": "t",
        "dataset": "d",
        "split": "test",
        "tasks": 10,
        "configs": [
            {
                "label": label,
                "router": "r",
                "summary": {"tasks": 10, "accuracy": q, "cost_per_task_usd": c, "cost_usd": 10 * c},
            }
            for label, c, q in configs
        ],
        "references": {
            "single_models": [{"label": n, "cost": c, "quality": q} for n, c, q in singles],
            "oracle": {"label": "oracle", "cost": oracle[0], "quality": oracle[1]}
            if oracle
            else None,
        },
    }
    return EvalDoc.model_validate(raw)


def crowded() -> EvalDoc:
    """Forty configurations of a sweep within a few per cent of each other, three single
    models among them, two apart, and the oracle."""
    configs = [
        (f"knn k={20 + i} λ=0.0{i % 3}", 0.002 * (1 + 0.03 * (i % 8)), 0.70 + 0.004 * (i // 8))
        for i in range(40)
    ]
    singles = [
        ("gpt-4o-mini", 0.0021, 0.71),
        ("claude-haiku", 0.0022, 0.712),
        ("llama <b>&amp;", 0.0019, 0.69),
        ("gpt-4o", 0.02, 0.85),
        ("o1", 0.05, 0.88),
    ]
    return doc_of(configs, singles, oracle=(0.003, 0.95))


def check_labels(plot: Plot) -> list[Box]:
    """Assert the labels' promise; returns the label boxes."""
    area = Box(plot.left, plot.top, plot.right, plot.bottom)
    boxes = [p.shown.box for p in plot.points if p.shown is not None]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for box in boxes:
        assert box.within(area), (box, area)
        for p in plot.points:
            assert not box.overlaps(p.marker()), (box, p)
    for p in plot.points:
        if p.shown is not None:
            assert p.kind != "curve"
            assert p.shown.text == (
                p.label if len(p.label) <= LABEL_CHARS else p.label[: LABEL_CHARS - 1] + "…"
            )
    return boxes


def test_crowded_labels_overlap_nothing_and_stay_inside_the_plot() -> None:
    plot = plot_of(crowded(), "crowded.json")
    assert plot is not None
    boxes = check_labels(plot)
    labelled = [p for p in plot.points if p.kind in ("config", "single", "oracle")]
    # Crowded: some labels had no place (and are left out), yet many found one.
    assert 8 <= len(boxes) < len(labelled)
    # The single models come first, so the sweep's crowd does not hide their names.
    assert all(p.shown is not None for p in plot.points if p.label in ("gpt-4o", "o1", "oracle"))


def test_a_sparse_plot_labels_every_point_to_its_right() -> None:
    plot = plot_of(
        doc_of([("a", 0.001, 0.5), ("b", 0.01, 0.7)], [("m", 0.004, 0.6)]), "sparse.json"
    )
    assert plot is not None
    check_labels(plot)
    for p in plot.points:
        assert p.shown is not None and p.shown.anchor == "start" and p.shown.x > p.x
        assert p.shown.box.y0 < p.y < p.shown.box.y1  # level with its point


def test_a_label_near_the_right_edge_goes_left_and_a_long_one_is_cut() -> None:
    long = "a label far longer than any plot has room for " * 3
    plot = plot_of(doc_of([("left", 0.001, 0.5), (long, 0.01, 0.7)]), "edge.json")
    assert plot is not None
    check_labels(plot)
    right = next(p for p in plot.points if p.label == long)
    assert right.shown is not None and right.shown.box.x1 <= right.x
    assert len(right.shown.text) == LABEL_CHARS and right.shown.text.endswith("…")


def test_the_layout_is_deterministic_whatever_the_order_of_configurations() -> None:
    doc = crowded()
    first, again = plot_of(doc, "x.json"), plot_of(doc.model_copy(deep=True), "x.json")
    assert first == again
    shuffled = doc.model_copy(update={"configs": doc.configs[::-1]})
    other = plot_of(shuffled, "x.json")
    assert first is not None and other is not None

    def placed(plot: Plot) -> dict[tuple[str, str], object]:
        return {(p.kind, p.label): p.shown for p in plot.points}

    assert placed(first) == placed(other)


labels = st.text(alphabet=st.sampled_from("abcmwMW0189 .=λ<>&漢😀"), min_size=0, max_size=50)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            labels,
            st.floats(1e-5, 1.0, allow_nan=False),
            st.floats(0.0, 1.0, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda t: t[0],
    ),
    singles=st.lists(st.tuples(labels, st.floats(1e-5, 1.0), st.floats(0.0, 1.0)), max_size=6),
)
def test_no_two_labels_overlap_for_any_points(
    points: list[tuple[str, float, float]], singles: list[tuple[str, float, float]]
) -> None:
    plot = plot_of(doc_of(points, singles, oracle=(points[0][1], 1.0)), "any.json")
    assert plot is not None
    check_labels(plot)


def test_the_label_font_size_is_the_stylesheets() -> None:
    """The boxes are estimated for LABEL_SIZE; the stylesheet is what draws the text."""
    rule = re.search(r"text\.pt-label\s*\{([^}]*)\}", UI_CSS.read_text())
    assert rule is not None
    assert re.search(rf"font-size:\s*{LABEL_SIZE}px", rule.group(1)), rule.group(1)


def test_a_crowded_page_draws_each_point_with_its_title_and_placed_labels_as_text(
    tmp_path: Path, make_client: MakeClient
) -> None:
    doc = crowded()
    # Written by routers' own writer, as orch eval --save would.
    ef.save(ef.EvalFile.model_validate(doc.model_dump()), tmp_path / "crowded.json")
    client = make_client(MemoryStore(), evals_dir=tmp_path)
    response = client.get("/evals/crowded.json")
    assert response.status_code == 200
    svg = ET.fromstring(re.search(r"<svg .*?</svg>", response.text, re.S).group(0))  # type: ignore[union-attr]
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = svg.findall(".//s:g", ns)
    plot = plot_of(doc, "crowded.json")
    assert plot is not None and len(groups) == len(plot.points)
    for g, p in zip(groups, plot.points, strict=True):
        assert g.get("data-label") == p.label
        title = g.find("s:title", ns)
        assert title is not None and title.text == p.tip  # every point, labelled or not
        text = g.find("s:text", ns)
        if p.shown is None:
            assert text is None
        else:
            assert text is not None and text.text == p.shown.text  # escaped text, no markup
            assert (float(text.get("x", "")), float(text.get("y", ""))) == (
                p.shown.x,
                p.shown.y,
            )
            assert text.get("text-anchor") == p.shown.anchor
    assert "<b>" not in response.text.split("<svg", 1)[1].split("</svg>", 1)[0]
