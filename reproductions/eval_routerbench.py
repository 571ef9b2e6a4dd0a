"""Cost-aware routing on the RouterBench subset: our routers against the zero router and oracle.

Reads the shared recordings at run time (``$ORCH_EVAL_DATA`` or the nearest
``shared/data/``; RouterBench states no license, so none of it is copied here) and exits
with a note when they are absent. Routers are fitted on the train split only (their
hyper-parameters chosen on a validation part of it) and measured on the test split, each
task a recorded run of the engine:

* the 11 **single models**, the **zero router** (the hull of their points: random mixing,
  no learning) and the **oracle** (cheapest correct model per task);
* the seeded **random router** over all models (one point);
* the **kNN router** (k nearest training queries, λ·expected quality - expected cost): k
  chosen on validation, then a sweep of λ;
* **AMRO-S** (one layer of 11 model nodes; task types = the three benchmarks, inferred from
  labelled training queries; ability priors = per-type training accuracy; pheromones learned
  from sampled routes over the train split through a gold-gated buffer), served in exploit
  mode at a sweep of β, the heuristic's exponent, which trades ability against pheromone
  (learned quality per cost);
* the ORCH **EMA router** (EMAs of quality and cost from the training feedback, in task
  order; the top of its panel answers): one point;
* the **agreement cascade** (two cheap probes; the strong model when they disagree) at a few
  (probes, strong) pairs.

Each router's AIQ is measured over the range from its cheapest point to the dearest single
model, against the zero router's over the same range. Run::

    python reproductions/eval_routerbench.py [--limit N] [--parallel 4] [--save FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from orch import Pipeline, PipelineBuilder, arun
from routers import (
    AgentNode,
    AMROParams,
    EMAState,
    LearnEntry,
    PheromoneState,
    TrajectoryBuffer,
    amro_learn,
    amro_router,
    apply_feedback,
    baselines,
    panel,
    save_state,
)
from routers.eval import (
    CurveRecord,
    Dataset,
    DataUnavailable,
    EvalConfig,
    EvalFile,
    EvalReport,
    Point,
    References,
    TableRecord,
    ability_priors,
    aiq,
    aiq_curve,
    config_of,
    ema_observations,
    evaluate,
    grade_last_call,
    holdout,
    intent_examples,
    knn_examples,
    load_dataset,
    mcnemar,
    ndch,
    router_pipeline,
    save,
    single_models,
    zero_router_aiq,
)
from traces import ArtifactStore, MemoryStore

LAMBDAS = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1.5e-2, 2e-2, 3e-2, 0.1, 1.0]
"""λ in USD per unit of quality: from 'cheapest' to 'best whatever it costs'."""
KS = [5, 20, 50, 100, 300]
"""kNN neighbourhood sizes tried on validation."""
BETAS = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
"""AMRO-S heuristic exponents: 0 = pheromone only (learned quality per cost), large =
ability prior only (best model for the task type)."""
# Pheromone scale: deposits Q/(cost + ε) with costs of 5e-5..1e-2 USD a call; Q = 1e-5 keeps
# the learned τ = Q/(ρ·cost) within [τmin, τmax] instead of every edge clamped at τmax.
AMRO_PARAMS = AMROParams(q=1e-5, tau0=1e-4, tau_min=1e-4, heuristic_weights=(1.0, 0.0, 0.0))
CASCADES = [
    (["mistralai/mistral-7b-chat", "WizardLM/WizardLM-13B-V1.2"], "mistralai/mixtral-8x7b-chat"),
    (["mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat"], "zero-one-ai/Yi-34B-Chat"),
    (["mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat"], "gpt-4-1106-preview"),
    (["mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat"], "gpt-4-1106-preview"),
]


def short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


class Bench:
    """The test split, its references, and every configuration measured on it."""

    def __init__(self, test: Dataset, store: ArtifactStore, parallel: int) -> None:
        self.test, self.store, self.parallel = test, store, parallel
        self.refs = References.of(test)
        assert self.refs.cost_range is not None and self.refs.oracle is not None, self.refs.note
        self.zero = [p.point() for p in self.refs.zero_router]
        self.configs: list[EvalConfig] = []
        self.curves: list[CurveRecord] = []
        self.rows: list[list[Any]] = []

    async def measure(
        self, pipeline: Pipeline, label: str, params: dict[str, Any], **kw: Any
    ) -> EvalReport:
        report = await evaluate(pipeline, self.test, self.store, parallel=self.parallel, **kw)
        self.configs.append(config_of(report, label, params))
        print(
            f"  {label:44s} accuracy {report.accuracy:.3f} at ${report.cost_per_task:.6f}/task"
            + (f" ({report.failed} failed)" if report.failed else "")
        )
        return report

    def curve(self, name: str, points: Sequence[Point]) -> float:
        """AIQ of ``points`` and the zero router's over the same range; adds a table row."""
        curve = aiq_curve(name, points, self.refs)
        if curve is None or curve.aiq is None or curve.cost_range is None:
            # One point dearer than every model: no range to measure over.
            self.rows.append([name, len(points), None, None, None])
            return float("nan")
        ours, zero = curve.aiq, zero_router_aiq(self.refs, curve.cost_range)
        lo, hi = curve.cost_range
        self.curves.append(curve)
        self.rows.append([name, len(points), round(ours, 4), round(zero, 4), round(ours - zero, 4)])
        print(
            f"{name}: AIQ {ours:.4f} over [${lo:.6f}, ${hi:.6f}], zero router "
            f"{zero:.4f} there: {ours - zero:+.4f}"
        )
        return ours - zero


async def val_aiq(fit: Dataset, val: Dataset, k: int, store: ArtifactStore, parallel: int) -> float:
    index = save_state(store, baselines.build_knn_index(knn_examples(fit)))
    points = []
    for lam in LAMBDAS:
        r = await evaluate(
            router_pipeline(baselines.knn_router.with_config(k=k, lam=lam), index=index),
            val,
            store,
            split="all",
            parallel=parallel,
        )
        points.append(r.point())
    singles = [m.cost for m in single_models(val) if m.cost is not None]
    lo = max(min(singles), ndch(points)[0].cost)
    return aiq(points, (lo, max(singles)))


async def knn(bench: Bench, train: Dataset) -> None:
    fit, val = holdout(train)
    print(f"kNN: choosing k on a validation part of train ({len(fit)} fit, {len(val)} val)")
    scores = {}
    for k in KS:
        scores[k] = await val_aiq(fit, val, k, bench.store, bench.parallel)
        print(f"  k={k:<4d} validation AIQ {scores[k]:.4f}")
    best = max(KS, key=lambda k: (scores[k], -k))
    index = save_state(bench.store, baselines.build_knn_index(knn_examples(train)))
    print(f"kNN k={best} (best on validation), fitted on all of train, on test:")
    points = []
    for lam in LAMBDAS:
        r = await bench.measure(
            router_pipeline(baselines.knn_router.with_config(k=best, lam=lam), index=index),
            f"knn k={best} λ={lam:g}",
            {"k": best, "lam": lam},
        )
        points.append(Point(r.cost_per_task, r.accuracy, f"λ={lam:g}"))
    bench.curve(f"kNN (k={best})", points)


def amro_config(train: Dataset, exploit: bool) -> dict[str, Any]:
    priors = ability_priors(train)
    nodes = [AgentNode(name=short(m), model=m, ability=priors.get(m, {})) for m in train.models]
    return {"layers": [nodes], "intent_examples": intent_examples(train), "exploit": exploit}


async def amro(bench: Bench, train: Dataset, seed: int) -> None:
    store = bench.store
    state = save_state(store, PheromoneState(params=AMRO_PARAMS))
    learn = PipelineBuilder("amro-learn")
    learn.output(
        "state",
        learn.node(
            "learn",
            amro_learn.with_config(gate="gold"),
            state=learn.input("state", str),
            entries=learn.input("entries", list[LearnEntry]),
        ),
    )
    learner = learn.build()
    explore = amro_router.with_config(**amro_config(train, exploit=False))
    buffer = TrajectoryBuffer(AMRO_PARAMS.buffer_size, seed=seed)
    batches = 0
    # Serve a buffer's worth of training tasks with one state version, learn, go on: serving
    # never writes pheromones, and each learning step is a recorded run.
    size = AMRO_PARAMS.buffer_size
    for start in range(0, len(train), size):
        chunk = train.model_copy(update={"tasks": train.tasks[start : start + size]})
        served = await evaluate(
            router_pipeline(explore, state=state),
            chunk,
            store,
            split="all",
            parallel=bench.parallel,
            seed=seed,
            grader=grade_last_call,
            describe=lambda _t, out: {"path": out.path, "weights": out.weights},
        )
        full = None
        for task, r in zip(chunk.tasks, served.results, strict=True):
            if not r.ok:
                continue
            entry = LearnEntry(
                question=task.question,
                weights=r.details["weights"],
                path=r.details["path"],
                cost_usd=r.cost_usd,  # the dataset's recorded cost, not registry prices
                # The gold gate compares answer and gold: the dataset's grade is the gold.
                answer="correct" if r.score >= 1.0 else "wrong",
                gold="correct",
            )
            full = buffer.add(entry) or full
        rest = buffer.flush() if start + size >= len(train) else []
        for batch in [b for b in (full, rest) if b]:
            run = await arun(learner, {"state": state, "entries": batch}, store=store)
            assert run.ok, run.error
            state = save_state(store, run.outputs["state"])
            batches += 1
    learned = PheromoneState.model_validate(store.get_value(state))
    print(f"AMRO-S: {batches} learning steps over {len(train)} train tasks; state {state[:19]}")
    points = []
    serve = amro_router.with_config(**amro_config(train, exploit=True))
    for beta in BETAS:
        params = AMRO_PARAMS.model_copy(update={"beta": beta})
        version = save_state(
            store, PheromoneState(params=params, tables=learned.tables, parent=state)
        )
        r = await bench.measure(
            router_pipeline(serve, state=version),
            f"amro-s β={beta:g}",
            {"beta": beta, "state": version},
            grader=grade_last_call,
        )
        points.append(Point(r.cost_per_task, r.accuracy, f"β={beta:g}"))
    bench.curve("AMRO-S", points)


async def ema(bench: Bench, train: Dataset) -> None:
    state = apply_feedback(EMAState(), ema_observations(train))
    version = save_state(bench.store, state)
    top = panel(state, train.models, k=3)
    print(f"EMA panel from train feedback: {', '.join(f'{short(a)} {s:.3f}' for a, s in top)}")
    r = await bench.measure(
        router_pipeline(baselines.single.with_config(model=top[0][0])),
        f"ema panel top ({short(top[0][0])})",
        {"state": version, "panel": [a for a, _ in top]},
    )
    bench.curve("EMA router", [r.point()])


async def cascades(bench: Bench) -> None:
    points = []
    for probes, strong in CASCADES:
        label = f"cascade {'+'.join(short(p) for p in probes)} -> {short(strong)}"
        r = await bench.measure(
            router_pipeline(baselines.agreement_cascade.with_config(probes=probes, strong=strong)),
            label,
            {"probes": probes, "strong": strong},
        )
        points.append(Point(r.cost_per_task, r.accuracy, label))
    bench.curve("agreement cascade", points)


COST_SLACK = 1.1
"""A setting is compared with a hull model when it costs at most this many times as much."""


def significance(bench: Bench) -> list[list[Any]]:
    """Per router: of its settings costing at most ``COST_SLACK`` times a single model on
    the zero router's hull, the (setting, model) pair where the setting gains most accuracy,
    with McNemar's exact test on per-task correctness. A router with no setting that cheap
    is compared with the dearest hull model."""
    hull = list(bench.zero)
    tasks = {t.id: t for t in bench.test.tasks}
    by_label = {c.label: c for c in bench.configs}
    out = []
    for curve in bench.curves:
        labels = [c.label for c in bench.configs if c.label.startswith(_prefix(curve.label))]
        pairs = [
            (float(by_label[lab].summary["accuracy"]) - p.quality, lab, p.label)
            for lab in labels
            for p in hull
            if by_label[lab].summary["cost_per_task_usd"] <= COST_SLACK * p.cost
        ]
        if not pairs:
            pairs = [
                (float(by_label[lab].summary["accuracy"]) - hull[-1].quality, lab, hull[-1].label)
                for lab in labels
            ]
        if not pairs:
            continue
        _, best, model = max(pairs)
        ours = [r.score >= 1.0 for r in by_label[best].runs]
        theirs = [tasks[r.task].responses[model][0].score == 1.0 for r in by_label[best].runs]
        m = mcnemar(ours, theirs)
        out.append(
            [
                best,
                round(by_label[best].summary["accuracy"], 4),
                short(model),
                round(sum(theirs) / len(theirs), 4),
                m.only_a,
                m.only_b,
                m.p_value,
            ]
        )
    return out


def _prefix(curve: str) -> str:
    return {
        "random router": "random",
        "AMRO-S": "amro-s",
        "EMA router": "ema panel",
        "agreement cascade": "cascade",
    }.get(curve, "knn")


async def main_async(limit: int | None, parallel: int, save_to: str | None, seed: int) -> int:
    try:
        data = load_dataset("routerbench")
    except DataUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    # Only tasks every model answered: a few ARC cells are ungraded in the source.
    data = data.complete()
    train, test = data.split("train"), data.split("test")
    if limit is not None:
        train, test = train.select(limit=limit), test.select(limit=limit)
    bench = Bench(test, MemoryStore(), parallel)
    print(f"RouterBench test: {len(test)} tasks, {len(test.models)} models; train: {len(train)}")
    for m in sorted(bench.refs.single_models, key=lambda m: m.cost):
        print(f"  {m.label:36s} accuracy {m.quality:.3f}  ${m.cost:.6f}/task")
    zero_aiq = bench.refs.zero_router_aiq
    best = bench.refs.oracle
    print(f"zero router: hull {' -> '.join(p.label for p in bench.zero)}; AIQ {zero_aiq:.4f}")
    print(f"oracle: accuracy {best.quality:.3f} at ${best.cost:.6f}/task")

    rnd = await bench.measure(
        router_pipeline(baselines.random_router.with_config(models=test.models)),
        "random",
        {"models": test.models},
        seed=seed,
    )
    bench.curve("random router", [rnd.point()])
    await knn(bench, train)
    await amro(bench, train, seed)
    await ema(bench, train)
    await cascades(bench)

    ranked = sorted((r for r in bench.rows if r[4] is not None), key=lambda r: -r[4])
    print("\nAIQ per router (each over its own range, against the zero router's there):")
    for name, n, ours, zero, delta in ranked:
        print(f"  {name:24s} {n:2d} points  AIQ {ours:.4f}  zero {zero:.4f}  {delta:+.4f}")
    top = ranked[0]
    print(f"best: {top[0]}, {top[4]:+.4f} AIQ over the zero router")
    tests = significance(bench)
    print("\nMcNemar: each router's best setting against a single model of the zero router's")
    print(f"hull that costs at least 1/{COST_SLACK:g} as much, on the same tasks:")
    for row in tests:
        print(
            f"  {row[0]:44s} {row[1]:.3f} vs {row[2]:28s} {row[3]:.3f}  "
            f"only ours {row[4]:3d}, only theirs {row[5]:3d}, p = {row[6]:.2g}"
        )
    if save_to:
        ev = EvalFile(
            title="Cost-aware routing on RouterBench (arc-challenge, winogrande, mbpp)",
            dataset=data.name,
            split="test",
            tasks=len(test),
            seed=seed,
            command="python reproductions/eval_routerbench.py --save " + save_to,
            references=bench.refs,
            configs=bench.configs,
            curves=bench.curves,
            tables=[
                TableRecord(
                    title="AIQ per router against the zero router over the same cost range",
                    columns=["router", "points", "AIQ", "zero router AIQ", "Δ"],
                    rows=ranked,
                ),
                TableRecord(
                    title="McNemar: each router's best setting against a hull model of (about) "
                    "the same cost or more",
                    columns=[
                        "setting",
                        "accuracy",
                        "single model",
                        "its accuracy",
                        "only ours right",
                        "only theirs right",
                        "p",
                    ],
                    rows=[[*r[:6], round(r[6], 6)] for r in tests],
                ),
            ],
            notes=[
                "Runs are in a MemoryStore: rerun with the command to regenerate them.",
            ],
        )
        print(f"evaluation file: {save(ev, save_to)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks a split")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed")
    parser.add_argument("--save", default=None, help="write the evaluation file here")
    args = parser.parse_args(argv)
    return anyio.run(main_async, args.limit, args.parallel, args.save, args.seed)


if __name__ == "__main__":
    sys.exit(main())
