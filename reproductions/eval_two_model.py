"""Two-model routing (RouteLLM's setting): APGR and CPT(50%), CPT(80%) of the kNN router.

On each two-model source of the shared recordings (RouteLLM's GSM8K and MMLU pairs,
gpt-4-1106 against mixtral-8x7b; RouterArena's pair, gemini-2.0-flash against
claude-3-haiku), the kNN router is fitted on the train split and swept over λ on the test
split. Each setting gives a point (share of tasks sent to the strong model, accuracy); with
the all-weak and all-strong settings as the ends, the curve gives

* **APGR**: the mean performance gap recovered over strong-call shares 0 to 1 (random
  routing scores 0.5 in expectation);
* **CPT(50%)**, **CPT(80%)**: the least strong-call share that recovers 50% / 80% of the gap.

The kNN router (k = 20 lexical neighbours among the training queries) counts cost in strong
calls: it asks the strong model when the neighbours' accuracy gap exceeds 1/λ.

The strong model is the one with the higher test accuracy. Every task of every setting is a
recorded run of the engine. Reads the shared data at run time (none of RouteLLM's is copied)
and says "skipped" when it is absent. Run::

    python reproductions/eval_two_model.py [--limit N] [--parallel 4] [--save-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from routers import baselines, save_state
from routers.eval import (
    CurveRecord,
    DataUnavailable,
    EvalFile,
    PointRecord,
    References,
    TableRecord,
    config_of,
    evaluate,
    knn_examples,
    load_dataset,
    router_pipeline,
    save,
    single_models,
    strong_share_curve,
)
from traces import MemoryStore

SOURCES = ["routellm-gsm8k", "routellm-mmlu", "routerarena"]
LAMBDAS = [1.01, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 1000.0]
"""The kNN router's costs here are in strong calls (strong 1, weak 0), so it sends a task
to the strong model when its neighbours say the strong one is better by more than 1/λ."""
MMLU_LIMIT = 2000
"""RouteLLM's MMLU test split has 9,910 tasks; the first 2,000 keep the sweep to minutes."""


async def one_source(name: str, limit: int | None, parallel: int) -> tuple[list[Any], EvalFile]:
    data = load_dataset(name).complete()
    train, test = data.split("train"), data.split("test")
    cap = limit if limit is not None else (MMLU_LIMIT if name == "routellm-mmlu" else None)
    if cap is not None:
        test = test.select(limit=cap)
    singles = {m.model: m for m in single_models(test)}
    strong, weak = sorted(singles, key=lambda m: -singles[m].quality)
    qs, qw = singles[strong].quality, singles[weak].quality
    store = MemoryStore()
    # Cost in strong calls, the two-model setting's unit: MMLU records no output tokens, so
    # the dollar cost is unknown there, and the share of strong calls is what APGR measures.
    examples = [
        {**e, "cost_usd": {strong: 1.0, weak: 0.0}} for e in knn_examples(train, priced=False)
    ]
    index = save_state(store, baselines.build_knn_index(examples))
    reports, configs = [], []
    for lam in LAMBDAS:
        report = await evaluate(
            router_pipeline(baselines.knn_router.with_config(k=20, lam=lam), index=index),
            test,
            store,
            parallel=parallel,
        )
        reports.append(report)
        configs.append(config_of(report, f"knn λ={lam:g}", {"k": 20, "lam": lam}))
    curve = strong_share_curve(reports, strong, qw, qs)
    a = curve.apgr()
    c50, c80 = curve.cpt(0.5), curve.cpt(0.8)
    row = [
        name,
        len(test),
        f"{weak} {qw:.3f}",
        f"{strong} {qs:.3f}",
        round(a, 4),
        None if c50 is None else round(c50, 4),
        None if c80 is None else round(c80, 4),
    ]
    ev = EvalFile(
        title=f"Two-model routing on {name}: kNN (k=20) λ sweep",
        dataset=name,
        split="test",
        tasks=len(test),
        command="python reproductions/eval_two_model.py",
        references=References(single_models=[PointRecord.of(m.point) for m in singles.values()]),
        configs=configs,
        curves=[
            CurveRecord(
                label="kNN (k=20)",
                points=[PointRecord.of(c.report(name, "test").point()) for c in configs],
            )
        ],
        tables=[
            TableRecord(
                title="Strong-call share and accuracy per setting",
                columns=["setting", "strong share", "accuracy", "PGR"],
                rows=[
                    [label, round(s, 4), round(q, 4), round((q - qw) / (qs - qw), 4)]
                    for label, (s, q) in zip(
                        ["all weak", "all strong", *(c.label for c in configs)],
                        curve.points,
                        strict=True,
                    )
                ],
            )
        ],
    )
    return row, ev


async def main_async(limit: int | None, parallel: int, save_dir: str | None) -> int:
    rows = []
    for name in SOURCES:
        try:
            row, ev = await one_source(name, limit, parallel)
        except DataUnavailable as exc:
            print(f"{name}: skipped: {exc}")
            continue
        rows.append(row)
        print(
            f"{name:15s} {row[1]:5d} tasks  weak {row[2]}  strong {row[3]}  APGR {row[4]}  "
            f"CPT(50%) {row[5]}  CPT(80%) {row[6]}"
        )
        if save_dir:
            print(f"  evaluation file: {save(ev, Path(save_dir) / f'two-model-{name}.json')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N test tasks")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument("--save-dir", default=None, help="write one evaluation file per source")
    args = parser.parse_args(argv)
    return anyio.run(main_async, args.limit, args.parallel, args.save_dir)


if __name__ == "__main__":
    sys.exit(main())
