"""The HTML reports in a real headless browser (Debian's chromium, driven by its CLI).

Each report is written by ``orch report`` from real recorded runs (a quickstart run with
routing decisions; an evaluation over a tiny dataset through the harness), opened from disk,
and checked in the DOM the browser built: the DAG with one box per step, the decisions, the
plot as a decodable PNG, the evaluation tables. A screenshot must be a picture, not a blank
page. Nothing in the pages may point at the network.

Skipped when chromium is not installed, unless ``ORCH_REQUIRE_BROWSER=1`` (CI sets it), in
which case a missing browser fails the run.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from example_modules import disagreeing_run, load_example
from typer.testing import CliRunner

from orch import PipelineBuilder
from orch.cli import app
from routers import baselines
from routers.eval import Dataset, Sample, Task, aiq
from routers.eval import _evalfile as ef
from routers.eval._harness import evaluate
from traces import DirectoryStore
from traces._runview import load_run_view

TIMEOUT = 30  # seconds per chromium call

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("ORCH_REQUIRE_BROWSER") == "1":
        pytest.fail("ORCH_REQUIRE_BROWSER=1 but no chromium is installed; apt-get install chromium")
    pytest.skip("no chromium installed (apt-get install chromium); ORCH_REQUIRE_BROWSER=1 fails")


def browse(
    chromium: str, page: Path, profile: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """One headless chromium call on ``page``, with no network features and a fresh profile."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
        *args,
        page.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish {args} on {page} within {TIMEOUT}s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Elements(HTMLParser):
    """Every element of a document as (tag, attributes)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def select(self, tag: str, cls: str | None = None, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.found
            if t == tag
            and (cls is None or cls in a.get("class", "").split())
            and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


def dom(chromium: str, page: Path, profile: Path) -> Elements:
    """The DOM as the browser built it from ``page``."""
    return Elements(browse(chromium, page, profile, "--dump-dom").stdout)


def screenshot(chromium: str, page: Path, profile: Path) -> Path:
    from PIL import Image

    shot = page.with_suffix(".png")
    browse(chromium, page, profile, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 100  # text, boxes, lines: not one colour
    return shot


def no_network_references(html: str) -> list[str]:
    """Every src/href (and the like) of ``html`` that points off the page's own file."""
    keys = {"src", "href", "xlink:href", "srcset", "poster", "data", "action", "formaction"}
    bad = []
    for tag, attrs in Elements(html).found:
        for key, value in attrs.items():
            v = value.strip().lower()
            if key in keys and (v.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:"))):
                bad.append(f"<{tag} {key}={value!r}>")
    if "url(http" in html or "@import" in html:
        bad.append("a stylesheet reference")
    return bad


# -- the reports, written by the CLI from real runs ------------------------------------------


@pytest.fixture(scope="module")
def quickstart() -> ModuleType:
    return load_example("quickstart", "quickstart_for_browser_report")


@pytest.fixture(scope="module")
def run_report(
    quickstart: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """(store dir, report file, run id) of a quickstart run whose models disagree."""
    root = tmp_path_factory.mktemp("run-report")
    run_id = disagreeing_run(quickstart, DirectoryStore(root / "store"))
    out = root / "run-report.html"
    done = CliRunner().invoke(
        app, ["report", run_id[:20], "--store", str(root / "store"), "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == str(out.resolve())
    return root / "store", out, run_id


def tiny() -> Dataset:
    def task(i: int) -> Task:
        return Task(
            id=f"t{i}",
            question=f"Question {i}: pick A or B.",
            gold="A",
            split="test",
            responses={
                "cheap": [Sample(text="AB"[i % 2], score=float(i % 2 == 0), cost_usd=0.001)],
                "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
            },
        )

    return Dataset(name="tiny", tasks=[task(i) for i in range(6)])


@pytest.fixture(scope="module")
def eval_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ef.EvalFile]:
    """(report file, evaluation) of three baselines evaluated through the engine."""
    root = tmp_path_factory.mktemp("eval-report")
    ds = tiny()
    store = DirectoryStore(root / "store")
    routers = {
        "cheap": baselines.single.with_config(model="cheap"),
        "dear": baselines.single.with_config(model="dear"),
        "random": baselines.random_router.with_config(models=["cheap", "dear"]),
    }

    async def run_all() -> list[ef.EvalConfig]:
        configs = []
        for label, agent in routers.items():
            p = PipelineBuilder(f"router-{label}")
            p.output("answer", p.node("r", agent, question=p.input("question", str)))
            configs.append(ef.config_of(await evaluate(p.build(), ds, store), label))
        return configs

    configs = anyio.run(run_all)
    references = ef.References.of(ds)
    span = references.cost_range
    assert span is not None
    points = [
        ef.PointRecord(
            label=c.label, cost=c.summary["cost_per_task_usd"], quality=c.summary["accuracy"]
        )
        for c in configs
    ]
    ev = ef.EvalFile(
        title="Baselines on tiny",
        dataset=ds.name,
        split="test",
        tasks=len(ds.tasks),
        store=str(root / "store"),
        references=references,
        configs=configs,
        curves=[
            ef.CurveRecord(
                label="baselines", points=points, aiq=aiq([p.point() for p in points], span)
            )
        ],
        tables=[
            ef.TableRecord(
                title="accuracy",
                columns=["configuration", "accuracy"],
                rows=[[c.label, c.summary["accuracy"]] for c in configs],
            )
        ],
    )
    source = ef.save(ev, root / "tiny-eval.json")
    out = root / "eval-report.html"
    done = CliRunner().invoke(app, ["report", str(source), "-o", str(out)])
    assert done.exit_code == 0, done.output
    return out, ev


# -- in the browser ----------------------------------------------------------------------------


def test_run_report_renders_dag_steps_and_decisions(
    chromium: str, run_report: tuple[Path, Path, str], tmp_path: Path
) -> None:
    store_dir, page, run_id = run_report
    view = load_run_view(DirectoryStore(store_dir), run_id)
    doc = dom(chromium, page, tmp_path / "profile")
    assert doc.select("body", data_report="run")
    assert len(doc.select("svg", "dag", id="dag-svg")) == 1
    boxes = doc.select("g", "dag-node")
    assert sorted(b["data-step"] for b in boxes) == sorted(n["id"] for n in view.spec["nodes"])
    assert {b["data-step"]: b["data-status"] for b in boxes} == view.statuses()
    assert len(doc.select("table", id="steps")) == 1
    assert len(doc.select("tr", "step")) == len(view.steps)
    assert len(doc.select("table", id="decisions")) == 1
    decided = [s for s in view.steps.values() for _ in s.decisions]
    assert len(doc.select("tr", "decision")) == len(decided) >= 2
    assert doc.select("table", id="run-summary") and doc.select("table", id="effects")
    shot = screenshot(chromium, page, tmp_path / "profile-shot")
    assert shot.name == "run-report.png"


def test_eval_report_renders_plot_and_tables(
    chromium: str, eval_report: tuple[Path, ef.EvalFile], tmp_path: Path
) -> None:
    from PIL import Image

    page, ev = eval_report
    doc = dom(chromium, page, tmp_path / "profile")
    assert doc.select("body", data_report="evaluation")
    plots = doc.select("img", "plot", id="cost-quality-plot")
    assert len(plots) == 1
    prefix = "data:image/png;base64,"
    assert plots[0]["src"].startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(plots[0]["src"][len(prefix) :])))
    assert image.format == "PNG" and image.width > 0 and image.height > 0
    assert doc.select("table", id="configs") and doc.select("table", id="references")
    assert len(doc.select("table", "eval-table")) == len(ev.tables)
    runs = doc.select("details", "config-runs")
    assert [d["data-config"] for d in runs] == [c.label for c in ev.configs]
    screenshot(chromium, page, tmp_path / "profile-shot")


def test_reports_load_nothing_from_the_network(
    run_report: tuple[Path, Path, str], eval_report: tuple[Path, ef.EvalFile]
) -> None:
    for page in (run_report[1], eval_report[0]):
        html = page.read_text()
        assert no_network_references(html) == [], page
        # The page forbids itself any load but inline styles and data: images.
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert no_network_references('<img src="https://example.com/x.png">')  # the check bites
