"""Evaluation throughput: tasks per second of ``routers.eval._harness.evaluate`` on 1,000
recorded tasks with full records on, at batch parallelism 1, 2, 4 and 8.

Every task is a real engine run (records, events, decisions, the run head) into a
``DirectoryStore`` on disk (what ``orch eval`` writes by default) and, for comparison, a
``MemoryStore``; the models are served by the recorded client from a synthetic dataset of
1,000 tasks and 3 models (generated here from a seed, so the benchmark needs no shared data).
Two routers: one model call per task (``single``) and three (``majority-vote``). Recorded
models answer at once by default, so the work is CPU-bound in one event loop and parallelism
buys little; ``--latency-ms`` makes each recorded call wait that long first (a stand-in for
a provider's response time), which is where running tasks at once pays. The report gives
tasks/s per cell and the ratio to parallel 1 in the same process run. Run::

    python tests/benchmarks/eval_throughput.py                  # 1,000 tasks, both latencies
    python tests/benchmarks/eval_throughput.py --tasks 50 --parallel 1 2   # smoke (CI)
    python tests/benchmarks/eval_throughput.py --json out.json

The suite never asserts on time; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from agents.models import ChatRequest, ChatResponse, ModelHub, ModelInfo, RecordedClient
from agents.models._registry import ProviderConfig
from orch import Pipeline
from routers import baselines
from routers.eval import Dataset, Sample, Task
from routers.eval._harness import evaluate, router_pipeline
from routers.eval.eval_services import PROVIDER, recorded_hub
from traces import ArtifactStore, MemoryStore
from traces._dirstore import DirectoryStore

MODELS = ["small", "medium", "large"]
ACCURACY = {"small": 0.55, "medium": 0.7, "large": 0.85}


def synthetic(n: int, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        gold = rng.choice("ABCD")
        responses = {}
        for m in MODELS:
            right = rng.random() < ACCURACY[m]
            letter = gold if right else rng.choice([x for x in "ABCD" if x != gold])
            responses[m] = [
                Sample(
                    text=f"Reasoning... the answer is {letter}.",
                    answer=letter,
                    score=float(right),
                    cost_usd={"small": 1e-4, "medium": 5e-4, "large": 3e-3}[m],
                )
            ]
        tasks.append(
            Task(
                id=f"q{i:05d}",
                question=f"Question {i}: which option is right? A, B, C or D. ({rng.random():.9f})",
                gold=gold,
                responses=responses,
            )
        )
    return Dataset(name="synthetic", tasks=tasks)


RECORDED: dict[int, Any] = {}


class Delayed:
    """A recorded client that waits ``seconds`` before answering, like a provider."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        await anyio.sleep(self.seconds)
        response: ChatResponse = await self.inner.complete(request, model)
        return response


ROUTERS = {
    "single (1 call)": router_pipeline(baselines.single.with_config(model="medium")),
    "majority-vote (3 calls)": router_pipeline(baselines.majority_vote.with_config(models=MODELS)),
}


async def cell(
    pipeline: Pipeline, data: Dataset, store: ArtifactStore, parallel: int, latency_ms: float
) -> tuple[float, float]:
    hub = recorded_hub(data)
    if latency_ms:
        inner = RecordedClient(PROVIDER, ProviderConfig(kind="recorded"), data=RECORDED[id(data)])
        hub = ModelHub(hub.registry, clients={PROVIDER: Delayed(inner, latency_ms / 1000)})
    started = time.perf_counter()
    report = await evaluate(pipeline, data, store, parallel=parallel, services={"models": hub})
    seconds = time.perf_counter() - started
    assert report.failed == 0 and report.tasks == len(data), report.summary()
    return len(data) / seconds, report.accuracy


def _fresh(kind: str, tmp: str, r: int) -> ArtifactStore:
    if kind == "memory":
        return MemoryStore()
    return DirectoryStore(Path(tempfile.mkdtemp(dir=tmp, prefix=f"r{r}-")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    data = synthetic(args.tasks)
    RECORDED[id(data)] = data.to_recorded_set()
    warm = synthetic(20, seed=1)
    RECORDED[id(warm)] = warm.to_recorded_set()
    for pipeline in ROUTERS.values():  # imports, caches and code paths warm before timing
        anyio.run(cell, pipeline, warm, MemoryStore(), 2, 0.0)
    rows: list[dict[str, Any]] = []
    print(f"{args.tasks} recorded tasks, {len(MODELS)} models; tasks/s (ratio to parallel 1)")
    with tempfile.TemporaryDirectory() as tmp:
        for latency in args.latency_ms:
            for store_kind in ("directory", "memory"):
                for name, pipeline in ROUTERS.items():
                    base = None
                    cells = []
                    for parallel in args.parallel:
                        store: ArtifactStore = (
                            DirectoryStore(Path(tmp) / f"s-{latency}-{name[:6]}-{parallel}")
                            if store_kind == "directory"
                            else MemoryStore()
                        )
                        rates = []
                        for r in range(args.repeat):
                            fresh = store if r == 0 else _fresh(store_kind, tmp, r)
                            rate, accuracy = anyio.run(
                                cell, pipeline, data, fresh, parallel, latency
                            )
                            rates.append(rate)
                        rate = statistics.median(rates)
                        base = base or rate
                        cells.append(f"p{parallel} {rate:7.1f} ({rate / base:4.2f}x)")
                        rows.append(
                            {
                                "latency_ms": latency,
                                "store": store_kind,
                                "router": name,
                                "parallel": parallel,
                                "tasks_per_s": round(rate, 2),
                                "ratio": round(rate / base, 3),
                                "accuracy": round(accuracy, 4),
                            }
                        )
                    print(
                        f"latency {latency:4g} ms  {store_kind:9s}  {name:24s}  " + "  ".join(cells)
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
