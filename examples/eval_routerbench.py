"""Cost-aware routing on the RouterBench subset: routers against the zero router and the oracle.

Reads the shared recordings at run time (``$ORCH_EVAL_DATA`` or the nearest
``shared/data/``; RouterBench states no license, so none of it is copied here) and exits
with a note when they are absent. Every router is trained on the train split only and
measured on the test split, each task a recorded run of the engine:

* the 11 single models, the **zero router** (the hull of their points, random mixing) and
  the **oracle** (cheapest correct model per task);
* the seeded **random router** over all models (one point, under the zero router's hull);
* the **kNN router** (k nearest training queries, λ·expected quality - expected cost), at a
  sweep of λ: its points, their hull and its AIQ over the single models' cost range.

Run::

    python examples/eval_routerbench.py [--limit N] [--parallel 4]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from orch import Pipeline, PipelineBuilder
from routers import baselines, save_state
from routers.eval import DataUnavailable, Point, aiq, load_dataset, ndch
from routers.eval.harness import evaluate
from routers.eval.reference import oracle, single_models, zero_router
from traces import MemoryStore

LAMBDAS = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1.5e-2, 2e-2, 3e-2, 0.1, 1.0]
"""λ in USD per unit of quality: from 'cheapest' to 'best whatever it costs'."""


def routed(agent: Any, **bound: Any) -> Pipeline:
    p = PipelineBuilder(agent.name)
    p.output("answer", p.node("route", agent, question=p.input("question", str), **bound))
    return p.build()


async def main_async(limit: int | None, parallel: int) -> int:
    try:
        data = load_dataset("routerbench")
    except DataUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    # Only tasks every model answered: a few ARC cells are ungraded in the source.
    data = data.complete()
    train, test = data.split("train"), data.split("test")
    if limit is not None:
        test = test.select(limit=limit)
    store = MemoryStore()
    singles = single_models(test)
    costs = [m.cost for m in singles if m.cost is not None]
    cost_range = (min(costs), max(costs))
    print(f"RouterBench test: {len(test)} tasks, {len(test.models)} models; train: {len(train)}")
    for m in sorted(singles, key=lambda m: m.cost or 0.0):
        print(f"  {m.model:36s} accuracy {m.quality:.3f}  ${m.cost or 0:.6f}/task")
    zero = zero_router(test, singles)
    zero_aiq = aiq(zero, cost_range)
    best = oracle(test)
    print(f"zero router: hull {' -> '.join(p.label for p in zero)}; AIQ {zero_aiq:.4f}")
    print(f"oracle: accuracy {best.quality:.3f} at ${best.cost:.6f}/task")

    rnd = await evaluate(
        routed(baselines.random_router.with_config(models=test.models)),
        test,
        store,
        parallel=parallel,
    )
    print(f"random router: accuracy {rnd.accuracy:.3f} at ${rnd.cost_per_task:.6f}/task")

    examples = []
    for task in train.tasks:
        scored = {
            m: samples[0]
            for m, samples in task.responses.items()
            if samples and samples[0].score is not None and samples[0].cost_usd is not None
        }
        if len(scored) == len(train.models):
            examples.append(
                {
                    "query": task.question,
                    "quality": {m: s.score for m, s in scored.items()},
                    "cost_usd": {m: s.cost_usd for m, s in scored.items()},
                }
            )
    index = baselines.build_knn_index(examples)
    version = save_state(store, index)
    print(f"kNN index: {len(examples)} training queries with every model scored ({version[:19]})")
    points: list[Point] = []
    for lam in LAMBDAS:
        report = await evaluate(
            routed(baselines.knn_router.with_config(k=5, lam=lam), index=version),
            test,
            store,
            parallel=parallel,
        )
        points.append(Point(report.cost_per_task, report.accuracy, f"λ={lam:g}"))
        print(
            f"  kNN λ={lam:<8g} accuracy {report.accuracy:.3f} at ${report.cost_per_task:.6f}/task"
            f" ({report.failed} failed)"
        )
    hull = ndch(points)
    lo = max(cost_range[0], hull[0].cost)
    knn_aiq = aiq(points, (lo, cost_range[1]))
    zero_same = aiq(zero, (lo, cost_range[1]))
    print(
        f"kNN AIQ {knn_aiq:.4f} over [${lo:.6f}, ${cost_range[1]:.6f}] against the zero "
        f"router's {zero_same:.4f} over the same range: {knn_aiq - zero_same:+.4f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N test tasks")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    args = parser.parse_args(argv)
    return anyio.run(main_async, args.limit, args.parallel)


if __name__ == "__main__":
    sys.exit(main())
