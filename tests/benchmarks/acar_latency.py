"""Issue 18: a router's calls made at once, in wall time, against the same calls in turn.

Every model call of a simulated provider takes a fixed latency (default 200 ms, a real
``anyio.sleep``), so a task's wall time is about the latency times the number of calls on its
critical path. Each task runs through the real engine (records, events, a memory store), one
run at a time, two ways:

* ``in turn``: ``Context.gather`` replaced by awaiting the calls one after another (what the
  routers did before issue 18);
* ``concurrent``: the routers as they are (``ctx.gather``: a stage's calls at once).

Tasks: ACAR with agreeing probes (3 probes: σ = 0, one stage), ACAR with σ = 0.5 (probes,
then 2 verifiers), ACAR with σ = 1 (probes, 3 ensemble answers, the judge), and ORCH (the
dispatcher's decomposition, 3 analysts, the merge). Reported per task: the calls made, the
stages (calls that must wait for one another), and the median wall time ÷ one call's latency
both ways; the issue's target is at most 1.2 for ACAR with agreeing probes (it was about 3).
Both ways must record the same run (the root hashes are compared and the result printed).
Run: ``python tests/benchmarks/acar_latency.py`` (``--latency S``, ``--repeat R``,
``--json FILE``; ``--smoke`` runs in a second). The suite never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio

from agents.models import ChatRequest, ChatResponse, ModelHub, ModelInfo, ModelRegistry, Usage
from orch import Context, Pipeline, PipelineBuilder, arun
from routers import EMAState, acar, orch_merge, save_state
from traces import MemoryStore

R = TypeVar("R")
TARGET = 1.2
MODELS = ("probe", "alpha", "beta", "judge")
REGISTRY = {
    "providers": {"sim": {"kind": "simulated"}},
    "models": {m: {"provider": "sim", "name": m, "input_per_mtok": 1.0} for m in MODELS},
}


class LatencyClient:
    """A model client that answers after ``latency`` seconds of real time."""

    provider = "sim"

    def __init__(self, latency: float, probes: list[str]) -> None:
        self.latency = latency
        self.probes = probes

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        await anyio.sleep(self.latency)
        prompt = request.messages[0].content or ""
        if prompt.startswith("Several assistants"):
            text = "Response 1"
        elif prompt.startswith("Split the question"):
            text = "1. What concept?\n2. Which options go?\n3. Does B hold?"
        elif prompt.startswith("Analyse"):
            text = "Key points. Tentative answer: B"
        elif model.name == "probe" and request.temperature:
            text = self.probes[request.sample % len(self.probes)]
        else:
            text = "B"
        return ChatResponse(text=text, usage=Usage(input_tokens=50, output_tokens=5))

    async def aclose(self) -> None:
        return None


def acar_pipeline() -> Pipeline:
    p = PipelineBuilder("acar-latency")
    cfg = {"probe_model": "probe", "ensemble": ["probe", "alpha", "beta"], "judge_model": "judge"}
    p.node("route", acar.with_config(**cfg), question=p.input("question", str))
    return p.build()


def orch_pipeline() -> Pipeline:
    p = PipelineBuilder("orch-latency")
    p.node(
        "m",
        orch_merge.with_config(agents=list(MODELS)),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    return p.build()


# task: (pipeline, probe answers, calls, stages)
TASKS: dict[str, tuple[str, list[str], int, int]] = {
    "ACAR, probes agree (σ=0)": ("acar", ["A"], 3, 1),
    "ACAR, σ=0.5 (2 verifiers)": ("acar", ["A", "B", "A"], 5, 2),
    "ACAR, σ=1 (ensemble + judge)": ("acar", ["A", "B", "C"], 7, 3),
    "ORCH (decompose, 3 analysts, merge)": ("orch", ["A"], 5, 3),
}


async def _in_turn(self: Context, *calls: Awaitable[R], limit: int | None = None) -> list[R]:
    return [await call for call in calls]


@contextmanager
def calls_in_turn() -> Iterator[None]:
    """``Context.gather`` awaiting its calls one after another, as the routers did."""
    concurrent = Context.gather
    Context.gather = _in_turn  # type: ignore[method-assign]
    try:
        yield
    finally:
        Context.gather = concurrent  # type: ignore[method-assign]


async def one_run(task: str, latency: float) -> tuple[float, str]:
    kind, probes, _, _ = TASKS[task]
    store = MemoryStore()
    hub = ModelHub(
        ModelRegistry.from_dict(REGISTRY), clients={"sim": LatencyClient(latency, probes)}
    )
    inputs: dict[str, Any] = {"question": "Which? A) x B) y C) z D) w"}
    if kind == "orch":
        inputs["state"] = save_state(store, EMAState())
    pipeline = acar_pipeline() if kind == "acar" else orch_pipeline()
    started = time.perf_counter()
    result = await arun(pipeline, inputs, store=store, seed=0, services={"models": hub})
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{task}: the run failed: {result.error}")
    return wall, result.root_hash


async def measure(latency: float, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for task, (_, _, calls, stages) in TASKS.items():
        walls: dict[str, list[float]] = {"in turn": [], "concurrent": []}
        roots: set[str] = set()
        for _ in range(repeat):  # interleaved, so that drift hits both ways alike
            with calls_in_turn():
                wall, root = await one_run(task, latency)
            walls["in turn"].append(wall)
            roots.add(root)
            wall, root = await one_run(task, latency)
            walls["concurrent"].append(wall)
            roots.add(root)
        rows.append(
            {
                "task": task,
                "calls": calls,
                "stages": stages,
                "in_turn": statistics.median(walls["in turn"]) / latency,
                "concurrent": statistics.median(walls["concurrent"]) / latency,
                "same_record": len(roots) == 1,
            }
        )
    return rows


def report(rows: list[dict[str, Any]], latency: float, repeat: int) -> None:
    print(f"wall time ÷ one call's latency ({latency * 1000:.0f} ms), median of {repeat} runs")
    head = f"{'task':<38} {'calls':>5} {'stages':>6} {'in turn':>8} {'concurrent':>10}  same record"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['task']:<38} {r['calls']:>5} {r['stages']:>6} {r['in_turn']:>8.2f} "
            f"{r['concurrent']:>10.2f}  {'yes' if r['same_record'] else 'NO'}"
        )
    agree = rows[0]
    verdict = "PASS" if agree["concurrent"] <= TARGET else "MISS"
    print(
        f"\n{verdict}: ACAR with agreeing probes takes {agree['concurrent']:.2f}x one call "
        f"(target <= {TARGET}; in turn {agree['in_turn']:.2f}x)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per model call")
    ap.add_argument("--repeat", type=int, default=5, help="runs per task and way")
    ap.add_argument("--smoke", action="store_true", help="20 ms calls, one run: proves it works")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    latency, repeat = (0.02, 1) if args.smoke else (args.latency, args.repeat)
    rows = anyio.run(measure, latency, repeat)
    report(rows, latency, repeat)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"latency_s": latency, "repeat": repeat, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
