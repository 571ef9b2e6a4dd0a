"""TCAR on CLINC150 with the trained offline router: trained on train, calibrated on val,
measured on test, every test query a recorded run.

Reads CLINC150 (Larson et al., EMNLP 2019; CC BY 3.0) from the shared data at run time
(``$ORCH_EVAL_DATA`` or the nearest ``shared/data/``) and says "skipped" when it is absent.
The team (:mod:`orch_reproductions.clinc_team`) is the paper's setting: 150 intent agents
whose cards hold their intent's **train** queries and its domain as their group, the
``oos_train`` queries as the registry's out-of-scope examples. For each of two
configurations, the scikit-learn TF-IDF features with wordllama sentence embeddings (the
default when the ``embed`` extra is installed) and TF-IDF alone, the script

1. trains the offline router (:func:`routers.train_tcar`, with its domain head) and
   calibrates its set ratio, decline threshold and domain weight on **val** (+ ``oos_val``)
   only, then stores the state in the run store (:func:`routers.save_state`);
2. runs every **test** query (4,500 in-scope, 1,000 out-of-scope) through the TCAR team
   pipeline with ``router_state`` set to that version, each an engine run recorded in the
   store (:func:`routers.eval.evaluate`);
3. reads each run's routing decision (its route and ``evidence["offline"]["decline_score"]``)
   and checks it against :func:`routers.classify` on the same state;
4. replays a seeded sample of the runs offline (``--replay-sample``), which must not diverge,
   and at the end verifies the whole store.

Measures on test, none tuned on it: the gold intent in the routing set, the gold domain as
the top choice's, agents per routed query, the decline score's out-of-scope AUROC, and at
the val threshold out-of-scope recall, in-scope accuracy (not declined and gold in the set)
and the accuracy over all queries (an out-of-scope query right only when declined), against
the targets of issue 18 and the paper's 91.25; plus a sweep of the decline threshold over
quantiles of the val scores, to show the trade-off. Each phase is timed. The result is one
evaluation file (``orch.eval-report/1``, ``--save``) for ``orch report``. Nothing is tuned
on test, and no model is called. Run::

    python reproductions/eval_tcar_clinc.py [--limit N] [--parallel 4] [--save FILE]
        [--store LOCATION] [--replay-sample 50] [--per-intent N]
"""

from __future__ import annotations

import argparse
import operator
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np

from orch.testing import aassert_replays_clean
from orch_reproductions.adapters.clinc import read_domains
from orch_reproductions.clinc_team import (
    ClincFigures,
    ClincTeam,
    QueryRecord,
    build_team,
    details_of,
    figures,
    heldout,
    is_right,
    record_details,
)
from routers import (
    IntentClassifier,
    TCARResult,
    TrainConfig,
    calibrate,
    classify,
    save_state,
    sentence_embeddings_available,
)
from routers.eval import (
    OOS,
    Dataset,
    DataUnavailable,
    EvalConfig,
    EvalFile,
    EvalReport,
    TableRecord,
    Task,
    config_of,
    data_root,
    evaluate,
    load_dataset,
    save,
)
from traces import ArtifactStore, load_run_view, open_store, verify_store

PAPER_ACCURACY = 91.25
"""TCAR 4B on CLINC150 (arXiv 2601.04544, Table 1)."""
QUANTILES = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
"""Quantiles of the val decline scores (in-scope and out-of-scope together) swept on test."""
SCORE_TOLERANCE = 1e-5
"""A recorded decline score is rounded to 6 decimals."""


@dataclass(frozen=True)
class Target:
    label: str
    measure: str
    """A :class:`ClincFigures` field."""
    op: Callable[[float, float], bool]
    value: float
    """In the unit the table prints (% for shares)."""
    only: str | None = None
    """The configuration key it applies to (None: both)."""

    def met(self, figures: ClincFigures) -> bool | None:
        v = shown(figures, self.measure)
        return None if v is None else self.op(v, self.value)


TARGETS = [
    Target("gold intent in the routing set (% in-scope) >= 96", "gold_in_set", operator.ge, 96),
    Target("gold domain = top choice's (% in-scope) >= 98", "domain", operator.ge, 98),
    Target("mean agents per routed query <= 1.3", "mean_agents", operator.le, 1.3),
    Target("out-of-scope AUROC of the decline score >= 0.96", "auroc", operator.ge, 0.96),
    Target("oos recall at the val threshold (%) >= 85", "oos_recall", operator.ge, 85),
    Target(
        "in-scope accuracy at the val threshold (%) >= 92", "in_scope_accuracy", operator.ge, 92
    ),
    Target("accuracy, all queries (%) >= 92", "accuracy", operator.ge, 92),
    Target(
        f"gold intent in the set (% in-scope) > paper's {PAPER_ACCURACY}",
        "gold_in_set",
        operator.gt,
        PAPER_ACCURACY,
        only="sklearn",
    ),
]


def shown(f: ClincFigures, measure: str) -> float | None:
    """A measure as the table prints it: shares in %, AUROC and agents as they are."""
    v = getattr(f, measure)
    if v is None:
        return None
    return round(float(v), 4) if measure in ("auroc", "mean_agents") else round(100 * v, 2)


def configurations() -> list[tuple[str, str, TrainConfig]]:
    """(key, label, training config) of the two configurations."""
    default = (
        "default: TF-IDF + wordllama sentence embeddings"
        if sentence_embeddings_available()
        else "default: TF-IDF (the embed extra is not installed)"
    )
    return [
        ("default", default, TrainConfig()),
        ("sklearn", "scikit-learn only: TF-IDF", TrainConfig(sentence=False)),
    ]


def spread(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    """``limit`` tasks evenly spaced over ``tasks`` (so a small run has both in-scope and
    out-of-scope queries), or all of them."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    return [tasks[i * len(tasks) // limit] for i in range(limit)]


def first_per_intent(split: Dataset, n: int | None) -> Dataset:
    """The first ``n`` queries of each intent of ``split`` (every out-of-scope one), or all."""
    if n is None:
        return split
    seen: dict[str | None, int] = {}
    kept = []
    for t in split.tasks:
        seen[t.gold] = seen.get(t.gold, 0) + 1
        if t.gold == OOS or seen[t.gold] <= n:
            kept.append(t)
    return split.model_copy(update={"tasks": kept})


class RecordError(Exception):
    """A recorded run disagrees with the router state it names."""


def router_decision(store: ArtifactStore, run_id: str) -> tuple[list[str], float, str | None]:
    """The route, decline score and state version of a run's (single) routing decision."""
    view = load_run_view(store, run_id)
    found = [
        d for s in view.steps.values() if s.record.agent.name == "tcar-router" for d in s.decisions
    ]
    if len(found) != 1:
        raise RecordError(f"run {run_id} has {len(found)} routing decisions, not 1")
    d = found[0]
    return list(d.chosen), float(d.evidence["offline"]["decline_score"]), d.state_version


def query_records(
    store: ArtifactStore,
    report: EvalReport,
    tasks: Sequence[Task],
    state: IntentClassifier,
    version: str,
) -> list[QueryRecord]:
    """One record per run, from its recorded decision, checked against :func:`classify` on
    the same state (score, decline and route must agree)."""
    scored = classify(state, [t.question for t in tasks], decline_below=None)
    threshold = state.decline_below
    out = []
    for task, result, c in zip(tasks, report.results, scored, strict=True):
        route, score, state_version = router_decision(store, result.run_id)
        declined = route == [OOS]
        if state_version != version:
            raise RecordError(f"run {result.run_id} routed with state {state_version}")
        if abs(score - c.decline_score) > SCORE_TOLERANCE:
            raise RecordError(
                f"run {result.run_id}: recorded decline score {score}, classify gives "
                f"{c.decline_score}"
            )
        if declined != (threshold is not None and c.decline_score < threshold):
            raise RecordError(f"run {result.run_id}: declined {declined}, classify disagrees")
        if not declined and route != c.chosen:
            raise RecordError(f"run {result.run_id}: route {route}, classify gives {c.chosen}")
        out.append(QueryRecord(task.gold or OOS, tuple(c.chosen), score, declined))
    return out


async def replay_sample(
    store: ArtifactStore, team: ClincTeam, version: str, run_ids: Sequence[str], n: int
) -> list[str]:
    """Replay ``n`` runs (a seeded sample) offline; the divergences found, as messages."""
    pipeline = team.pipeline(version)
    services = team.services()
    diverged = []
    for run_id in random.Random(0).sample(sorted(run_ids), min(n, len(run_ids))):
        try:
            await aassert_replays_clean(run_id, store=store, pipeline=pipeline, services=services)
        except AssertionError as exc:
            diverged.append(str(exc))
    return diverged


@dataclass
class Measured:
    key: str
    label: str
    state: IntentClassifier
    version: str
    figures: ClincFigures
    sweep: list[tuple[str, float, ClincFigures]]
    """(quantile or "val-tuned", threshold, figures)."""
    config: EvalConfig
    phases: dict[str, float] = field(default_factory=dict)
    replayed: int = 0
    diverged: list[str] = field(default_factory=list)


class Clock:
    """Wall time per phase (metadata of the evaluation, never hashed)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> float:
        now = time.perf_counter()
        self.phases[phase] = round(now - self._t, 2)
        self._t = now
        return self.phases[phase]


def grade(task: Task, out: TCARResult, calls: list[tuple[str, int]]) -> float:
    return float(is_right(task.gold or OOS, out.route.chosen))


async def measure(
    key: str,
    label: str,
    train_config: TrainConfig,
    team: ClincTeam,
    val: Dataset,
    test: Dataset,
    store: ArtifactStore,
    args: argparse.Namespace,
) -> Measured:
    clock = Clock()
    state = team.train(train_config)
    clock.lap("train")
    pairs, negatives = heldout(val)
    state = calibrate(state, pairs, negatives)
    val_scores = np.array(
        [
            c.decline_score
            for c in classify(state, [t.question for t in val.tasks], decline_below=None)
        ]
    )
    clock.lap("calibrate on val")
    version = save_state(store, state)
    print(
        f"{label}: trained on {state.examples} texts ({clock.phases['train']:.0f} s), set ratio "
        f"{state.set_ratio}, decline below {state.decline_below:.4f}"
        + (f", domain weight {state.groups.weight:g}" if state.groups is not None else "")
        + f" (val); state {version}"
    )
    report = await evaluate(
        team.pipeline(version),
        test,
        store,
        split="test",
        parallel=args.parallel,
        services=team.services(),
        grader=grade,
        describe=details_of,
    )
    clock.lap("test runs")
    if report.failed:
        bad = next(r for r in report.results if not r.ok)
        raise RecordError(f"{report.failed} runs failed, e.g. {bad.task}: {bad.error}")
    records = query_records(store, report, test.tasks, state, version)
    clock.lap("read decisions, check with classify")
    diverged = await replay_sample(
        store, team, version, [r.run_id for r in report.results], args.replay_sample
    )
    clock.lap("replay sample")
    result = figures(records, team.domain_of)
    sweep = [("val-tuned", float(state.decline_below or 0.0), result)]
    for q in QUANTILES:
        t = float(np.quantile(val_scores, q))
        sweep.append((f"{q:g}", t, figures(records, team.domain_of, threshold=t)))
    cfg = config_of(
        report,
        label,
        {
            "train": train_config.model_dump(mode="json"),
            "router_state": version,
            "embedder": embedder_kinds(state),
            "set_ratio": state.set_ratio,
            "decline_below": state.decline_below,
        },
    )
    for run, record in zip(cfg.runs, records, strict=True):
        run.details.update(record_details(record))
    cfg.summary["clinc150"] = result.as_dict()
    cfg.summary["replayed"] = min(args.replay_sample, len(report.results))
    cfg.summary["divergences"] = len(diverged)
    cfg.summary["phases_seconds"] = dict(clock.phases)
    return Measured(
        key,
        label,
        state,
        version,
        result,
        sweep,
        cfg,
        dict(clock.phases),
        min(args.replay_sample, len(report.results)),
        diverged,
    )


def embedder_kinds(state: IntentClassifier) -> list[str]:
    spec = state.embedder
    parts = [p.spec for p in spec.parts] if spec.kind == "combined" else [spec]
    return [p.kind if p.kind != "tfidf" else f"tfidf-{p.analyzer}" for p in parts]


def _cell(v: str | float | int | None) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def print_table(t: TableRecord) -> None:
    """A table as markdown (pasted as is into reproductions/docs/tcar-clinc.md)."""
    print(f"\n{t.title}\n")
    print("| " + " | ".join(t.columns) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|")
    for row in t.rows:
        print("| " + " | ".join(_cell(c) for c in row) + " |")
    if t.note:
        print(f"\n{t.note}")


def results_table(measured: list[Measured], tasks: int) -> TableRecord:
    columns = ["measure (test)"]
    for m in measured:
        columns += [m.label, "vs target"]
    rows: list[list[str | float | int | None]] = []
    for target in TARGETS:
        row: list[str | float | int | None] = [target.label]
        for m in measured:
            if target.only is not None and target.only != m.key:
                row += [None, None]
                continue
            met = target.met(m.figures)
            row += [
                shown(m.figures, target.measure),
                "—" if met is None else ("met" if met else "missed"),
            ]
        rows.append(row)
    rows.append(
        [
            "paper: TCAR 4B, CLINC150 accuracy (%)",
            *[x for _ in measured for x in (PAPER_ACCURACY, None)],
        ]
    )
    return TableRecord(
        title=f"CLINC150 test ({tasks} queries): the trained offline router",
        columns=columns,
        rows=rows,
        note="Trained on the train split (+ oos_train), set ratio, decline threshold and "
        "domain weight calibrated on val (+ oos_val), nothing tuned on test. Routing set: the "
        "classifier's set before any decline, ordered by the domain head; in-scope "
        "accuracy: not declined and gold in the set; accuracy: all queries, an "
        "out-of-scope query right only when declined (the paper's figure is its gold-in-set "
        "accuracy with a fine-tuned 4B reasoning model).",
    )


def sweep_table(measured: list[Measured]) -> TableRecord:
    rows: list[list[str | float | int | None]] = []
    for m in measured:
        for q, t, f in m.sweep:
            rows.append(
                [
                    m.label,
                    q,
                    round(t, 4),
                    shown(f, "oos_recall"),
                    shown(f, "in_scope_accuracy"),
                    shown(f, "accuracy"),
                    shown(f, "mean_agents"),
                ]
            )
    return TableRecord(
        title="Decline threshold sweep on test (thresholds from val score quantiles)",
        columns=[
            "configuration",
            "val quantile",
            "threshold",
            "oos recall %",
            "in-scope acc %",
            "accuracy %",
            "mean agents",
        ],
        rows=rows,
        note="Each threshold is a quantile of the decline scores of all val queries; the "
        "test figures at it show the trade-off between out-of-scope recall and in-scope "
        "accuracy. Not a tuning: the reported threshold is the val-tuned one.",
    )


def phases_table(measured: list[Measured], common: dict[str, float]) -> TableRecord:
    names = list(dict.fromkeys(p for m in measured for p in m.phases))
    rows: list[list[str | float | int | None]] = [
        [k, v, *(None for _ in measured)] for k, v in common.items()
    ]
    rows += [[p, None, *(m.phases.get(p) for m in measured)] for p in names]
    return TableRecord(
        title="Wall time per phase (s)",
        columns=["phase", "shared", *(m.label for m in measured)],
        rows=rows,
    )


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    common: dict[str, float] = {}
    try:
        data = load_dataset("clinc150")
        domain_of = read_domains(data_root() / "clinc150" / "domains.json")
    except DataUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    train = first_per_intent(data.split("train"), args.per_intent)
    val = first_per_intent(data.split("val"), args.per_intent)
    test = data.split("test")
    tasks = spread(test.tasks, args.limit)
    test_set = Dataset(
        name=data.name, source=data.source, license=data.license, copyable=True, tasks=tasks
    )
    team = build_team(train, domain_of)
    common["load data, build team"] = round(time.perf_counter() - started, 2)
    n_oos = sum(1 for t in tasks if t.gold == OOS)
    print(
        f"CLINC150: {len(team.cards)} intent agents from the train split "
        f"({sum(len(c.examples) for c in team.cards)} queries, {len(team.out_of_scope)} "
        f"out-of-scope), calibrated on val ({len(val)} queries), measured on test: "
        f"{len(tasks)} queries ({len(tasks) - n_oos} in-scope, {n_oos} out-of-scope)"
    )
    location = args.store or "memory:"
    measured: list[Measured] = []
    with open_store(location) as store:
        for key, label, train_config in configurations():
            try:
                m = await measure(key, label, train_config, team, val, test_set, store, args)
            except RecordError as exc:
                print(f"{label}: {exc}")
                return 1
            measured.append(m)
            f = m.figures
            print(
                f"  {len(tasks)} runs in {m.phases['test runs']:.0f} s: gold in set "
                f"{shown(f, 'gold_in_set')}%, accuracy {shown(f, 'accuracy')}%; replayed "
                f"{m.replayed} runs: {len(m.diverged)} divergences"
            )
            for message in m.diverged[:3]:
                print(message)
        t0 = time.perf_counter()
        verified = verify_store(store)
        common["verify the store"] = round(time.perf_counter() - t0, 2)
    runs = verified.checked.get("runs", 0)
    print(
        f"verified the store: {runs} runs, {verified.checked.get('artifacts', 0)} artifacts, "
        f"{len(verified.problems)} problems"
    )
    for p in verified.problems[:3]:
        print(f"  {p}")
    tables = [
        results_table(measured, len(tasks)),
        sweep_table(measured),
        phases_table(measured, common),
    ]
    for t in tables:
        print_table(t)
    seconds = time.perf_counter() - started
    command = "python reproductions/eval_tcar_clinc.py" + "".join(
        f" {flag} {value}"
        for flag, value in [
            ("--limit", args.limit),
            ("--per-intent", args.per_intent),
            ("--parallel", args.parallel),
            ("--replay-sample", args.replay_sample),
            ("--store", args.store),
            ("--save", args.save),
        ]
        if value is not None
    )
    diverged = sum(len(m.diverged) for m in measured)
    ev = EvalFile(
        title="TCAR on CLINC150 with the trained offline router",
        dataset=data.name,
        split="test",
        tasks=len(tasks),
        seed=0,
        store=None if location.startswith("memory") else location,
        command=command,
        configs=[m.config for m in measured],
        tables=tables,
        notes=[
            "150 intent agents from the train split (+ oos_train as out-of-scope examples); "
            "each card's group is its intent's domain; set ratio, decline threshold and "
            "domain weight calibrated on val (+ oos_val) only; measured on test. No model is "
            "called: cost is $0.",
            *(f"{m.label}: router state {m.version}" for m in measured),
            f"Replayed {sum(m.replayed for m in measured)} sampled runs offline: "
            f"{diverged} divergences. Store verification: {runs} runs, "
            f"{len(verified.problems)} problems.",
            f"Data: {data.source}; license {data.license}.",
            f"Wall time {seconds:.0f} s.",
        ],
    )
    path = save(ev, args.save)
    print(
        f"\nsaved {path} ({len(measured)} configurations x {len(tasks)} runs); runs in "
        f"{'memory (gone at exit)' if ev.store is None else ev.store}; total {seconds:.0f} s"
    )
    return 0 if not diverged and verified.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="N test queries spread over the split"
    )
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument("--save", default="eval-tcar-clinc150.json", help="evaluation file")
    parser.add_argument(
        "--store", default=None, help="where to record the runs (default: in memory)"
    )
    parser.add_argument(
        "--replay-sample", type=int, default=50, help="runs per configuration to replay"
    )
    parser.add_argument(
        "--per-intent",
        type=int,
        default=None,
        help="a quick look: train and calibrate on the first N queries of each intent "
        "(default: all)",
    )
    args = parser.parse_args(argv)
    for name in ("limit", "per_intent"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.parallel < 1:
        parser.error(f"--parallel must be at least 1, got {args.parallel}")
    if args.replay_sample < 0:
        parser.error(f"--replay-sample must be at least 0, got {args.replay_sample}")
    return anyio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
