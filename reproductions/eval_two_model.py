"""Two-model routing (RouteLLM's setting): APGR and CPT of the kNN and trained routers.

On each two-model source of the shared recordings (RouteLLM's GSM8K and MMLU pairs,
gpt-4-1106 against mixtral-8x7b; RouterArena's pair, gemini-2.0-flash against
claude-3-haiku), every router is fitted on the train split (hyper-parameters chosen on a
validation quarter of it, without runs, :mod:`routers.eval._offline`) and run on the test
split at several settings. Each setting gives a point (share of tasks sent to the strong
model, accuracy); with the all-weak and all-strong settings as the ends, the curve gives

* **APGR**: the mean performance gap recovered over strong-call shares 0 to 1 (random
  routing scores 0.5 in expectation);
* **CPT(50%)**, **CPT(80%)**: the least strong-call share that recovers 50% / 80% of the gap.

The routers, all on one embedder (wordllama sentence vectors when the ``embed`` extra is
installed, else a TF-IDF over the training queries):

* **kNN** (k chosen on validation), cost counted in strong calls: it asks the strong model
  when its neighbours say the strong one is better by more than 1/λ, swept over λ;
* the trained **classifier**, **MF** and **SW** routers (RouteLLM's three): the strong model
  when q̂_strong - q̂_weak reaches a threshold, calibrated (RouteLLM's
  ``calibrate_threshold``, :func:`routers.threshold_for_share`) to strong-call shares of 10%
  to 90% on out-of-fold scores of the training queries (5 folds), so no test data sets them.

The strong model is the one with the higher test accuracy. Every task of every setting is a
recorded run of the engine, and a seeded sample of them per source is verified and replayed
offline (``--replay-sample``). Reads the shared data at run time (none of RouteLLM's is
copied) and says "skipped" when it is absent. Run::

    python reproductions/eval_two_model.py [--limit N] [--parallel 4] [--save-dir DIR]
        [--replay-sample 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from numpy.typing import NDArray

from orch import Pipeline
from orch_reproductions.trained_grid import TRAINED, described
from routers import (
    CachedEmbedder,
    Embedder,
    TfidfEmbedder,
    WordLlamaEmbedder,
    baselines,
    save_state,
    sentence_embeddings_available,
    serving_embedder,
    threshold_for_share,
    two_model_scores,
)
from routers.eval import (
    CurveRecord,
    DataUnavailable,
    EvalConfig,
    EvalFile,
    EvalReport,
    PointRecord,
    References,
    TableRecord,
    audit_runs,
    config_of,
    evaluate,
    holdout,
    knn_examples,
    load_dataset,
    outcome_arrays,
    ranked_apgr,
    recorded_hub,
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
SHARES = [round(0.1 * i, 1) for i in range(1, 10)]
"""The strong-call shares the trained routers' thresholds are calibrated to."""
KS = [5, 10, 20, 50, 100, 200]
"""kNN neighbourhood sizes tried on validation."""
FOLDS = 5
MMLU_LIMIT = 2000
"""RouteLLM's MMLU test split has 9,910 tasks; the first 2,000 keep the sweep to minutes."""


@dataclass
class Source:
    """One two-model source: its splits, models, examples and embedders."""

    name: str
    test: Any
    strong: str
    weak: str
    strong_quality: float
    weak_quality: float
    fit: list[dict[str, Any]]
    train: list[dict[str, Any]]
    val_texts: list[str]
    val_strong: NDArray[np.float64]
    val_weak: NDArray[np.float64]
    fit_embedder: Embedder
    embedder: Embedder
    embedding: str
    store: MemoryStore = field(default_factory=MemoryStore)
    configs: list[EvalConfig] = field(default_factory=list)
    curves: list[CurveRecord] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    runs: list[tuple[Pipeline, str]] = field(default_factory=list)

    def examples(self, dataset: Any) -> list[dict[str, Any]]:
        # Cost in strong calls, the two-model setting's unit: MMLU records no output tokens,
        # so the dollar cost is unknown there, and the share of strong calls is what APGR
        # measures.
        return [
            {**e, "cost_usd": {self.strong: 1.0, self.weak: 0.0}}
            for e in knn_examples(dataset, priced=False)
        ]

    def val_apgr(self, scores: NDArray[np.float64]) -> float:
        return ranked_apgr(scores, self.val_strong, self.val_weak, SHARES)

    async def measure(
        self, pipeline: Pipeline, label: str, params: dict[str, Any], parallel: int
    ) -> EvalReport:
        report = await evaluate(pipeline, self.test, self.store, parallel=parallel)
        self.configs.append(config_of(report, label, params))
        self.runs += [(pipeline, r.run_id) for r in report.results]
        return report

    def curve(
        self, router: str, setting: str, val: float, reports: list[EvalReport], labels: list[str]
    ) -> float:
        curve = strong_share_curve(reports, self.strong, self.weak_quality, self.strong_quality)
        a, c50, c80 = curve.apgr(), curve.cpt(0.5), curve.cpt(0.8)
        self.curves.append(
            CurveRecord(
                label=f"{router} ({setting})",
                points=[
                    PointRecord(label=lab, cost=s, quality=q)
                    for lab, (s, q) in zip(
                        ["all weak", "all strong", *labels], curve.points, strict=True
                    )
                ],
            )
        )
        self.rows.append(
            [
                router,
                setting,
                round(val, 4),
                round(a, 4),
                None if c50 is None else round(c50, 4),
                None if c80 is None else round(c80, 4),
            ]
        )
        cpts = [("-" if c is None else f"{c:.3f}") for c in (c50, c80)]
        print(
            f"  {router:11s} {setting:12s} val APGR {val:.4f}  APGR {a:.4f}  "
            f"CPT(50%) {cpts[0]}  CPT(80%) {cpts[1]}"
        )
        return a


def source(name: str, limit: int | None) -> Source:
    data = load_dataset(name).complete()
    train, test = data.split("train"), data.split("test")
    cap = limit if limit is not None else (MMLU_LIMIT if name == "routellm-mmlu" else None)
    if cap is not None:
        test = test.select(limit=cap)
        if limit is not None:
            train = train.select(limit=limit)
    singles = {m.model: m for m in single_models(test)}
    strong, weak = sorted(singles, key=lambda m: -singles[m].quality)
    fit, val = holdout(train)
    if len(val) < 4 or len(fit) < 4:  # a --limit smoke run: too few tasks to hold out
        fit = val = train
    outcomes = outcome_arrays(val, priced=False)
    fit_texts = [e["query"] for e in knn_examples(fit, priced=False)]
    fit_emb: Embedder
    if sentence_embeddings_available():
        fit_emb = emb = serving_embedder(WordLlamaEmbedder().spec)
        embedding = "wordllama"
    else:

        def tfidf(texts: list[str]) -> TfidfEmbedder:
            return TfidfEmbedder.fit(texts, ngram_range=(1, 1), min_df=2 if len(texts) >= 40 else 1)

        train_texts = [e["query"] for e in knn_examples(train, priced=False)]
        fit_emb = CachedEmbedder(tfidf(fit_texts))
        emb = serving_embedder(tfidf(train_texts).spec)
        embedding = "TF-IDF"
    src = Source(
        name=name,
        test=test,
        strong=strong,
        weak=weak,
        strong_quality=singles[strong].quality,
        weak_quality=singles[weak].quality,
        fit=[],
        train=[],
        val_texts=outcomes.texts,
        val_strong=outcomes.quality[:, outcomes.models.index(strong)],
        val_weak=outcomes.quality[:, outcomes.models.index(weak)],
        fit_embedder=fit_emb,
        embedder=emb,
        embedding=embedding,
    )
    src.fit, src.train = src.examples(fit), src.examples(train)
    return src


async def knn(src: Source, parallel: int) -> float:
    fit_index = baselines.build_knn_index(src.fit, embedder=src.fit_embedder)
    estimator = baselines.KNNEstimator(fit_index, embedder=src.fit_embedder)
    s, w = fit_index.models.index(src.strong), fit_index.models.index(src.weak)
    scores = {}
    for k in KS:
        quality, _ = estimator.estimates(src.val_texts, k)
        scores[k] = src.val_apgr(quality[:, s] - quality[:, w])
    best = max(KS, key=lambda k: (scores[k], -k))
    index = save_state(src.store, baselines.build_knn_index(src.train, embedder=src.embedder))
    reports, labels = [], []
    for lam in LAMBDAS:
        label = f"knn k={best} λ={lam:g}"
        reports.append(
            await src.measure(
                router_pipeline(baselines.knn_router.with_config(k=best, lam=lam), index=index),
                label,
                {"k": best, "lam": lam, "index": index},
                parallel,
            )
        )
        labels.append(label)
    return src.curve("kNN", f"k={best}", scores[best], reports, labels)


def out_of_fold(src: Source, train_router: Callable[..., Any], config: Any) -> NDArray[np.float64]:
    """Each training query's score from a router fitted without its fold."""
    texts = [e["query"] for e in src.train]
    scores = np.empty(len(texts))
    for fold in range(FOLDS):
        held = [i for i in range(len(texts)) if i % FOLDS == fold]
        kept = [e for i, e in enumerate(src.train) if i % FOLDS != fold]
        if not held or not kept:
            continue
        state = train_router(kept, src.embedder, config=config)
        scores[held] = two_model_scores(
            state, [texts[i] for i in held], strong=src.strong, embedder=src.embedder
        )
    return scores


async def trained(src: Source, name: str, parallel: int) -> float:
    agent, train_router, grid = TRAINED[name]
    found = []
    for config in grid:
        state = train_router(src.fit, src.fit_embedder, config=config)
        scores = two_model_scores(
            state, src.val_texts, strong=src.strong, embedder=src.fit_embedder
        )
        found.append((src.val_apgr(scores), config))
    val, config = max(found, key=lambda f: f[0])  # ties: the first tried
    calibration = out_of_fold(src, train_router, config)
    state = train_router(src.train, src.embedder, config=config)
    version = save_state(src.store, state)
    setting = described(config)
    reports, labels = [], []
    for share in SHARES:
        threshold = threshold_for_share(calibration, share)
        label = f"{name} {setting} share={share:g}"
        reports.append(
            await src.measure(
                router_pipeline(
                    agent.with_config(threshold=threshold, strong=src.strong), state=version
                ),
                label,
                {"threshold": threshold, "share": share, "state": version},
                parallel,
            )
        )
        labels.append(label)
    return src.curve(name, setting, val, reports, labels)


async def one_source(
    name: str, limit: int | None, parallel: int, replay: int
) -> tuple[list[list[Any]], EvalFile, bool]:
    started = time.perf_counter()
    src = source(name, limit)
    print(
        f"{name}: {len(src.test)} test tasks, weak {src.weak} {src.weak_quality:.3f}, strong "
        f"{src.strong} {src.strong_quality:.3f}; {len(src.train)} train ({src.embedding})"
    )
    knn_apgr = await knn(src, parallel)
    for router in TRAINED:
        await trained(src, router, parallel)
    audit = await audit_runs(
        src.store, src.runs, {"models": recorded_hub(src.test)}, replay, seed=0
    )
    print(f"  audit: {audit.line()}")
    for problem in audit.problems:
        print(f"    {problem}")
    seconds = time.perf_counter() - started
    print(f"  {seconds:.1f} s")
    rows = [[name, len(src.test), *row, round(row[3] - knn_apgr, 4) + 0.0] for row in src.rows]
    ev = EvalFile(
        title=f"Two-model routing on {name}: kNN and trained routers",
        dataset=name,
        split="test",
        tasks=len(src.test),
        command="python reproductions/eval_two_model.py",
        references=References(
            single_models=[
                PointRecord(label=src.weak, cost=0.0, quality=src.weak_quality),
                PointRecord(label=src.strong, cost=1.0, quality=src.strong_quality),
            ]
        ),
        configs=src.configs,
        curves=src.curves,
        tables=[
            TableRecord(
                title="APGR and CPT per router (points: strong-call share, accuracy)",
                columns=[
                    "router",
                    "setting",
                    "validation APGR",
                    "APGR",
                    "CPT(50%)",
                    "CPT(80%)",
                    "APGR - kNN",
                ],
                rows=[r[2:] for r in rows],
            )
        ],
        notes=[
            f"Embedder: {src.embedding}. Weak {src.weak} {src.weak_quality:.4f}, strong "
            f"{src.strong} {src.strong_quality:.4f}.",
            f"Audit: {audit.line()}.",
            f"Wall time {seconds:.1f} s.",
        ],
    )
    return rows, ev, audit.ok


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    table: list[list[Any]] = []
    ok = True
    for name in SOURCES:
        try:
            rows, ev, clean = await one_source(name, args.limit, args.parallel, args.replay_sample)
        except DataUnavailable as exc:
            print(f"{name}: skipped: {exc}")
            continue
        table += rows
        ok = ok and clean
        if args.save_dir:
            print(f"  evaluation file: {save(ev, Path(args.save_dir) / f'two-model-{name}.json')}")
    columns = ["source", "tasks", "router", "setting", "val APGR", "APGR", "CPT(50%)", "CPT(80%)"]
    print("\n| " + " | ".join([*columns, "APGR - kNN"]) + " |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for r in table:
        print("| " + " | ".join("-" if v is None else str(v) for v in r) + " |")
    print(f"\nwall time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks a split")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument("--save-dir", default=None, help="write one evaluation file per source")
    parser.add_argument(
        "--replay-sample", type=int, default=20, help="test runs per source to verify and replay"
    )
    args = parser.parse_args(argv)
    if args.replay_sample < 0:
        parser.error(f"--replay-sample must be at least 0, got {args.replay_sample}")
    return anyio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
