"""The HTML report of an evaluation file: made from a real harness run over a tiny dataset,
it shows the tables, the reference points and the cost-quality plot (a PNG embedded in the
page), lists runs by id so numbers trace back to them, and still renders without matplotlib."""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import anyio
import pytest

from orch import PipelineBuilder
from routers import baselines
from routers.eval import Dataset, Point, Sample, Task, aiq
from routers.eval import _evalfile as ef
from routers.eval._harness import evaluate
from routers.eval._report import PLOT_EXTRA, cost_quality_png, render_eval_report
from traces import MemoryStore
from traces._verify import verify_run


def tiny() -> Dataset:
    def task(i: int) -> Task:
        return Task(
            id=f"t{i}",
            question=f"Question {i}: pick A or B.",
            gold="A",
            split="test",
            responses={
                "cheap": [Sample(text="AB"[i % 2], score=float(i % 2 == 0), cost_usd=0.001)],
                "mid": [Sample(text="BA"[i % 4 != 0], score=float(i % 4 != 0), cost_usd=0.003)],
                "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
            },
        )

    return Dataset(name="tiny <set>", tasks=[task(i) for i in range(12)])


def pipe(agent: object) -> object:
    p = PipelineBuilder(getattr(agent, "name", "router"))
    p.output("answer", p.node("r", agent, question=p.input("question", str)))
    return p.build()


ROUTERS = {
    "single cheap": baselines.single.with_config(model="cheap"),
    "single dear": baselines.single.with_config(model="dear"),
    "random cheap/dear": baselines.random_router.with_config(models=["cheap", "dear"]),
    "agreement cascade": baselines.agreement_cascade.with_config(
        probes=["cheap", "mid"], strong="dear"
    ),
}


def evaluation(store: MemoryStore) -> ef.EvalFile:
    """Every configuration evaluated through the engine, with references and a curve."""
    ds = tiny()

    async def run_all() -> list[ef.EvalConfig]:
        return [
            ef.config_of(await evaluate(pipe(agent), ds, store), label)  # type: ignore[arg-type]
            for label, agent in ROUTERS.items()
        ]

    configs = anyio.run(run_all)
    references = ef.References.of(ds)
    span = references.cost_range
    assert span is not None
    points = [
        Point(c.summary["cost_per_task_usd"], c.summary["accuracy"], c.label) for c in configs
    ]
    return ef.EvalFile(
        title="Tiny <evaluation> & co",
        dataset=ds.name,
        split="test",
        tasks=len(ds.tasks),
        store="memory:",
        command="python -m pytest tests/routers/eval/test_report_eval.py",
        references=references,
        configs=configs,
        curves=[
            ef.CurveRecord(
                label="baselines",
                points=[ef.PointRecord.of(p) for p in points],
                aiq=aiq(points, span),
                cost_range=span,
            )
        ],
        tables=[
            ef.TableRecord(
                title="accuracy <by> configuration",
                columns=["configuration", "accuracy", "tasks"],
                rows=[[c.label, c.summary["accuracy"], c.summary["tasks"]] for c in configs],
                note="as the test printed it",
            )
        ],
        notes=["a note with <b>markup</b> stays text"],
    )


@pytest.fixture(scope="module")
def recorded() -> tuple[MemoryStore, ef.EvalFile]:
    store = MemoryStore()
    return store, evaluation(store)


@pytest.fixture
def saved(recorded: tuple[MemoryStore, ef.EvalFile], tmp_path: Path) -> ef.EvalFile:
    """The file as ``orch report`` reads it: saved and loaded again."""
    return ef.load(ef.save(recorded[1], tmp_path / "tiny.json"))


def plot_image(page: str) -> bytes:
    found = re.findall(
        r'<img class="plot" id="cost-quality-plot" [^>]*src="data:image/png;base64,([^"]+)"', page
    )
    assert len(found) == 1
    return base64.b64decode(found[0])


def test_report_has_tables_references_and_runs(
    recorded: tuple[MemoryStore, ef.EvalFile], saved: ef.EvalFile
) -> None:
    store, _ = recorded
    page = render_eval_report(saved)
    body = page.split("<body", 1)[1]
    assert "<h1>Tiny &lt;evaluation&gt; &amp; co</h1>" in body and "<b>markup" not in body
    assert 'id="eval-meta"' in body and "tiny &lt;set&gt;" in body
    assert saved.command is not None and saved.command in body
    # One summary row per configuration, with accuracy and cost per task.
    configs = re.search(r'<table id="configs">.*?</table>', body, re.S)
    assert configs is not None
    assert configs.group(0).count("<tr>") == 1 + len(ROUTERS)
    for c in saved.configs:
        assert f"<td>{c.label}</td>" in configs.group(0)
        assert f"{c.summary['accuracy']:.4f}" in configs.group(0)
        assert f"${c.summary['cost_per_task_usd']:.8f}" in configs.group(0)
    # Reference points, the zero router's AIQ, the curve's AIQ and the file's own table.
    refs = saved.references
    assert refs.zero_router_aiq is not None and refs.oracle is not None
    assert f"{refs.zero_router_aiq:.4f}" in body and 'id="references"' in body
    assert body.count("<td>single model</td>") == 3
    assert saved.curves[0].aiq is not None and f"{saved.curves[0].aiq:.4f}" in body
    assert "<caption>accuracy &lt;by&gt; configuration</caption>" in body
    # Per configuration, the first runs by id: each one a verifiable recorded run.
    details = re.findall(r'<details class="config-runs" data-config="([^"]+)">', body)
    assert details == [c.label for c in saved.configs]
    assert "first 10 of 12 runs" in body
    for c in saved.configs:
        assert c.runs[0].run_id in body and c.runs[9].run_id in body
        assert c.runs[10].run_id not in body
    assert verify_run(store, saved.configs[0].runs[0].run_id).ok


def test_plot_is_an_embedded_png_with_a_picture_in_it(saved: ef.EvalFile) -> None:
    from PIL import Image

    page = render_eval_report(saved)
    image = Image.open(io.BytesIO(plot_image(page)))
    assert image.format == "PNG" and image.width > 600 and image.height > 400
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # lines, points, text: not blank
    assert "AIQ" in page and "plot-missing" not in page


def test_same_file_same_bytes(saved: ef.EvalFile) -> None:
    assert render_eval_report(saved) == render_eval_report(saved)
    assert cost_quality_png(saved) == cost_quality_png(saved)


def test_without_matplotlib_the_rest_renders_and_says_how_to_get_plots(
    saved: ef.EvalFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    page = render_eval_report(saved)
    assert cost_quality_png(saved) is None
    assert 'id="plot-missing"' in page and PLOT_EXTRA.replace("'", "&#x27;") in page
    assert "<img" not in page
    assert 'id="configs"' in page and 'id="references"' in page and "config-runs" in page


def test_configurations_are_plotted_when_there_is_no_curve(saved: ef.EvalFile) -> None:
    bare = saved.model_copy(update={"curves": []})
    assert cost_quality_png(bare) is not None
    assert 'id="cost-quality-plot"' in render_eval_report(bare)


def test_an_empty_evaluation_renders() -> None:
    ev = ef.EvalFile(title="nothing yet", dataset="d", split="test", tasks=0)
    page = render_eval_report(ev)
    assert "No configurations in this file." in page
    assert "No reference points in this file." in page
    assert "No points to plot" in page
