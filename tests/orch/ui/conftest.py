"""Stores for the ``orch ui`` tests: real quickstart runs, a run full of hostile text, and a
client for the app over a store.

The quickstart runs are recorded by the engine from the example's recorded models (offline):
some escalate to the judge, some do not, all with seed 7, plus one with another seed. The
hostile run's model answer, decision reason, candidates and evidence hold script tags, a
``javascript:`` URL, an attribute breakout and a 1 MB string.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from example_modules import load_example
from pydantic import BaseModel
from starlette.testclient import TestClient

import orch
from orch import Context, PipelineBuilder, Selection, agent
from orch.ui import UiSettings, create_app
from traces import ArtifactStore, DirectoryStore

SCRIPT = "<script>alert(1)</script>"
JS_URL = "javascript:alert(1)"
BREAKOUT = '"><img src=x onerror=alert(1)>'
HUGE = "H" * 1_000_000
# Scripts that would leave a mark if they ever ran (the browser test looks for it).
MARKERS = (
    "<script>window.__orch_xss = 1</script>",
    '<img src=x onerror="window.__orch_xss = 2">',
    '<svg onload="window.__orch_xss = 3"></svg>',
)
PROBES = (SCRIPT, JS_URL, BREAKOUT, *MARKERS)
HOSTILE = " ".join(PROBES)


@pytest.fixture(scope="session")
def quickstart() -> ModuleType:
    return load_example("quickstart", "quickstart_for_ui")


@pytest.fixture(scope="session")
def quick_store(quickstart: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory store with 6 quickstart runs (seed 7) and one more (seed 11)."""
    root = tmp_path_factory.mktemp("ui-quick") / "store"
    store = DirectoryStore(root)
    items = quickstart.items()
    for i, item in enumerate(items[:7]):
        result = orch.run(
            quickstart.pipeline,
            {"question": item["question"]},
            store=store,
            seed=11 if i == 6 else 7,
            services=quickstart.services(),
        )
        assert result.ok, result.error
    store.close()
    return root


class Q(BaseModel):
    question: str


class A(BaseModel):
    answer: str


class Route(Selection):
    pass


@agent(name="hostile-asker", version="1")
async def asker(q: Q, ctx: Context) -> A:
    async def call() -> dict[str, Any]:
        return {"text": HOSTILE + " " + HUGE}

    response = await ctx.effect("model", JS_URL, {"prompt": q.question}, call)
    return A(answer=response["text"])


@agent(name="hostile-router", version="1")
async def router(q: Q, ctx: Context) -> Route:
    ctx.decide(
        candidates=[SCRIPT, JS_URL, BREAKOUT],
        chosen=[JS_URL],
        reason=HOSTILE + " escalating " + HUGE,
        scores={SCRIPT: 0.1, JS_URL: 0.9, "note": BREAKOUT},
        evidence={"answer": HOSTILE, "huge": HUGE},
        parameters={"link": JS_URL},
    )
    return Route(branches=["plain"])


def hostile_pipeline() -> orch.Pipeline:
    p = PipelineBuilder("hostile " + SCRIPT)
    q = p.input("question", str)
    p.node("route", router, question=q)
    p.output("answer", p.node("ask", asker, question=q))
    return p.build()


@pytest.fixture(scope="session")
def xss_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(store dir, run id) of one run whose recorded text is hostile."""
    root = tmp_path_factory.mktemp("ui-xss") / "store"
    store = DirectoryStore(root)
    result = orch.run(hostile_pipeline(), {"question": HOSTILE}, store=store, seed=1)
    assert result.ok, result.error
    store.close()
    return root, result.run_id


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client() -> MakeClient:
    """A TestClient for the app over a store, on a loopback address by default."""

    def make(store: ArtifactStore, **settings: Any) -> TestClient:
        base = settings.pop("base_url", "http://127.0.0.1:8765")
        return TestClient(create_app(UiSettings(store=store, **settings)), base_url=base)

    return make


class Elements(HTMLParser):
    """Every element of an HTML document as (tag, attributes), and its text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def select(self, tag: str, cls: str | None = None, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.found
            if t == tag
            and (cls is None or cls in a.get("class", "").split())
            and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


@pytest.fixture
def parse() -> Callable[[str], Elements]:
    return Elements


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def orch_ui(store: Path, *args: str, port: int | None = None) -> Iterator[tuple[str, int]]:
    """``orch ui`` as a real process over ``store``: yields (the address it printed, port);
    stopped (and its output checked for tracebacks) on exit."""
    port = port or free_port()
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch.cli", "ui", "--store", str(store), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket listens; "" if it died
        assert line.startswith("orch ui: http://"), (line, proc.wait(30), proc.stderr.read())
        yield line.removeprefix("orch ui: ").strip(), port
    finally:
        proc.terminate()
        try:
            _, errors = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errors = proc.communicate()
        assert "Traceback" not in errors, errors[-3000:]


# -- replay and evaluations ----------------------------------------------------------------

QUICKSTART_FILE = Path(__file__).resolve().parents[3] / "examples" / "quickstart.py"
EFFECTS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "effects_pipeline.py"


def record_with_origin(
    store: ArtifactStore, target: str, inputs: dict[str, Any], seed: int = 7
) -> str:
    """Run the pipeline file ``target`` as ``orch run`` records it (its origin: the file and
    its source files), so that a replay knows what to import; returns the run id."""
    from orch._loader import load_pipeline, load_services
    from orch.cli._run import origin_of

    result = orch.run(
        load_pipeline(target),
        inputs,
        store=store,
        seed=seed,
        services=load_services(target),
        origin=origin_of(store, target),
    )
    assert result.ok, result.error
    return result.run_id


@pytest.fixture(scope="session")
def replayable_store(
    quickstart: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    """(store dir, run ids) of two quickstart runs recorded with their origin."""
    root = tmp_path_factory.mktemp("ui-replay") / "store"
    store = DirectoryStore(root)
    items = quickstart.items()
    ids = [
        record_with_origin(store, str(QUICKSTART_FILE), {"question": item["question"]})
        for item in items[:2]
    ]
    store.close()
    return root, ids


@pytest.fixture
def changed_project(tmp_path: Path) -> tuple[Path, str, Path]:
    """(store dir, run id, pipeline file): a run of a three-call pipeline whose file was
    edited after the run (step b's prompt), so that a replay with it diverges at b."""
    project = tmp_path / "project"
    project.mkdir()
    flow = project / "flow.py"
    flow.write_text(EFFECTS_FILE.read_text())
    root = tmp_path / "store"
    store = DirectoryStore(root)
    run_id = record_with_origin(store, str(flow), {"question": "hi"})
    store.close()
    text = flow.read_text()
    assert 'pipeline = _three("Rephrase: {q}")' in text
    flow.write_text(
        text.replace('pipeline = _three("Rephrase: {q}")', 'pipeline = _three("Reword: {q}")')
    )
    return root, run_id, flow


@pytest.fixture(scope="session")
def eval_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(evaluations folder, store dir, file name): a real evaluation (routers' harness over a
    tiny recorded dataset, through the engine) of four configurations, two of them of the
    same pipeline name, saved with routers.eval's own writer; plus a file that is no
    evaluation."""
    import anyio

    from routers import baselines
    from routers.eval import Dataset, Point, Sample, Task
    from routers.eval import _evalfile as ef
    from routers.eval._curves import aiq_curve
    from routers.eval._harness import evaluate

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

    ds = Dataset(name="tiny <set>", tasks=[task(i) for i in range(8)])
    routers = {
        "single cheap": baselines.single.with_config(model="cheap"),
        "single dear": baselines.single.with_config(model="dear"),
        "cascade <b>": baselines.agreement_cascade.with_config(
            probes=["cheap", "mid"], strong="dear"
        ),
    }

    def pipe(agent: Any) -> orch.Pipeline:
        p = PipelineBuilder(agent.name)
        p.output("answer", p.node("r", agent, question=p.input("question", str)))
        return p.build()

    base = tmp_path_factory.mktemp("ui-evals")
    root = base / "store"
    store = DirectoryStore(root)

    async def run_all() -> list[ef.EvalConfig]:
        return [
            ef.config_of(await evaluate(pipe(agent), ds, store), label)
            for label, agent in routers.items()
        ]

    configs = anyio.run(run_all)
    store.close()
    references = ef.References.of(ds)
    points = [
        Point(c.summary["cost_per_task_usd"], c.summary["accuracy"], c.label) for c in configs
    ]
    curve = aiq_curve("all configurations", points, references)
    ev = ef.EvalFile(
        title="Tiny <evaluation> & co",
        dataset=ds.name,
        split="test",
        tasks=len(ds.tasks),
        store=str(root),
        command="orch eval tiny --pipeline ...",
        references=references,
        configs=configs,
        curves=[curve] if curve is not None else [],
        tables=[
            ef.TableRecord(title="A <table>", columns=["router", "acc"], rows=[["x<script>", 0.5]])
        ],
    )
    folder = base / "evals"
    ef.save(ev, folder / "tiny.json")
    (folder / "other.json").write_text('{"format": "something-else/1"}')
    return folder, root, "tiny.json"
