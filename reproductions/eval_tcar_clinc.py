"""TCAR-style routing on CLINC150 with the offline router: tuned on val, measured on test.

Reads CLINC150 (Larson et al., EMNLP 2019; CC BY 3.0) from the shared data at run time
(``$ORCH_EVAL_DATA`` or the nearest ``shared/data/``) and says "skipped" when it is absent.
Two TCAR teams are built from the **train** split (:mod:`orch_reproductions.clinc_team`): ten
**domain agents** (each names the intent of its domain nearest the query, or declines), and
150 **intent agents** (the paper's setting, an intent is an agent). Both route with the
offline lexical TCAR router and merge with the offline refining agent; no model is called,
so every configuration costs $0.

The thresholds (router: ``lexical_k``, ``lexical_min_similarity``, ``lexical_ratio``;
domain agents: ``intent_k``, ``intent_min_similarity``) are tuned on the **val** split only,
by the mean of in-scope accuracy and out-of-scope recall, over a grid, with a simulation of
the pipeline (checked against the recorded runs). Measured on the **test** split, each
query a recorded run of the engine:

* the tuned domain team and a sweep of its ``lexical_min_similarity`` (the router's
  out-of-scope threshold), to show the trade-off between in-scope accuracy and out-of-scope
  recall, and a smaller sweep of ``lexical_ratio`` (more agents per query);
* the tuned intent team, the one comparable with the paper's CLINC150 accuracy;
* both teams with their out-of-scope thresholds at 0, as references.

The measures are :mod:`routers.eval._setmetrics`'s. The result is one evaluation file
(``orch.eval-report/1``, ``--save``) for ``orch report``. Run::

    python reproductions/eval_tcar_clinc.py [--limit N] [--parallel 4] [--save FILE]
        [--store LOCATION] [--grid full|small]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio

from orch_reproductions.clinc_team import (
    ClincTeam,
    Level,
    Simulator,
    TeamParams,
    balanced,
    build_team,
    details_of,
    outcome_of,
    predicted_label,
    tune,
)
from routers import TCARResult
from routers.eval import (
    OOS,
    Dataset,
    DataUnavailable,
    EvalConfig,
    EvalFile,
    RoutingSummary,
    TableRecord,
    Task,
    config_of,
    evaluate,
    load_dataset,
    save,
    summarize,
)
from traces import open_store

GRIDS: dict[str, dict[Level, dict[str, list[Any]]]] = {
    "full": {
        "domain": {
            "lexical_k": [10, 20, 40],
            "lexical_min_similarity": [0.0, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
            "lexical_ratio": [0.7, 0.9, 1.0],
            "intent_k": [5, 10],
            "intent_min_similarity": [0.0, 0.5, 0.6],
        },
        "intent": {
            "lexical_k": [5, 10, 20, 40],
            "lexical_min_similarity": [0.0, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
            "lexical_ratio": [0.5, 0.7, 0.8, 0.9, 1.0],
        },
    },
    "small": {  # a quick look (and the smoke test): a few points around the full tuning's
        "domain": {
            "lexical_k": [20],
            "lexical_min_similarity": [0.5, 0.65],
            "lexical_ratio": [0.9, 1.0],
            "intent_k": [10],
            "intent_min_similarity": [0.0],
        },
        "intent": {
            "lexical_k": [20],
            "lexical_min_similarity": [0.5, 0.65],
            "lexical_ratio": [1.0],
        },
    },
}
SWEEP = [0.0, 0.5, 0.7, 0.8]
"""``lexical_min_similarity`` of the domain team's sweep (the tuned value is added)."""
RATIO_SWEEP = [0.5, 0.7, 0.9]
"""``lexical_ratio`` of a second, smaller sweep at the tuned threshold: more agents per
query (the tuned value is left out, it is a row already)."""
TUNED_INTENT = "intent agents (150), tuned"
NO_OOS: dict[Level, str] = {
    "domain": "domain agents, no oos thresholds",
    "intent": "intent agents (150), no oos threshold",
}
"""Reference rows: the tuned team with its out-of-scope thresholds at 0 (what the router and
agents get right when nothing is declined for being too far)."""
PAPER = {"accuracy": 91.25, "accuracy_no_reason": 89.65, "mean_agents": 1.37}
"""TCAR 4B on CLINC150 (arXiv 2601.04544, Table 1) and its mean agents chosen, as the
paper reports them."""


def spread(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    """``limit`` tasks evenly spaced over ``tasks`` (so a small run has both in-scope and
    out-of-scope queries), or all of them."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    return [tasks[i * len(tasks) // limit] for i in range(limit)]


def pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def num(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _cell(v: str | float | int | None) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}"
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


def answers_table(rows: list[tuple[str, RoutingSummary]]) -> TableRecord:
    return TableRecord(
        title="CLINC150 test: the final answers (%)",
        columns=[
            "configuration",
            "in-scope acc",
            "oos recall",
            "false declines",
            "accuracy (all)",
            "domain acc (top choice)",
            "domain acc (answer)",
            "conflicts",
        ],
        rows=[
            [
                label,
                pct(s.in_scope_accuracy),
                pct(s.oos_recall),
                pct(s.false_decline_rate),
                pct(s.accuracy),
                pct(s.domain_accuracy),
                pct(s.answer_domain_accuracy),
                pct(s.no_answer_share),
            ]
            for label, s in rows
        ],
        note="in-scope acc: final intent = gold intent, over in-scope queries; oos recall: "
        "out-of-scope queries declined; false declines: in-scope queries declined; accuracy "
        "(all): over all queries, oos a label; domain acc (top choice): the router's first "
        "choice is (for intent agents: lies in) the gold domain, over in-scope queries; domain "
        "acc (answer): the final intent lies in the gold domain; conflicts: queries with no "
        "single final answer (the refiner stated a conflict), counted wrong.",
    )


def routing_table(rows: list[tuple[str, RoutingSummary]]) -> TableRecord:
    def f(s: RoutingSummary, name: str) -> float | None:
        score = getattr(s, name)
        return None if score is None else pct(score.f1)

    return TableRecord(
        title="CLINC150 test: TCAR-style routing (%; agents per query)",
        columns=[
            "configuration",
            "route acc (all)",
            "route acc (in-scope)",
            "set P",
            "set R",
            "set F1",
            "micro F1",
            "mean agents",
            "mean agents (routed)",
            "> 1 agent",
        ],
        rows=[
            [
                label,
                pct(s.route_accuracy),
                pct(s.route_accuracy_in_scope),
                pct(s.set_mean.precision if s.set_mean else None),
                pct(s.set_mean.recall if s.set_mean else None),
                f(s, "set_mean"),
                f(s, "set_micro"),
                num(s.mean_agents),
                num(s.mean_agents_routed),
                pct(s.multi_agent_share),
            ]
            for label, s in rows
        ],
        note="route acc: the gold agent is in the chosen set (oos: the router chose oos), "
        "TCAR's accuracy; set P/R/F1: per query, averaged over all queries, gold = {gold "
        "agent} or {} for oos, both empty scoring 1 and one empty 0; micro F1: from pooled "
        "counts; mean agents: over all queries, oos routes counting 0; (routed): over the "
        "queries the router sent to agents; > 1 agent: share of all queries.",
    )


def paper_table(ours: list[tuple[str, RoutingSummary]]) -> TableRecord:
    """The paper's CLINC150 figures beside ours (``ours``: column label, summary)."""

    def row(name: str, paper: float | None, value: Any) -> list[str | float | int | None]:
        return [name, paper, *(value(s) for _, s in ours)]

    return TableRecord(
        title="Against the paper (TCAR, arXiv 2601.04544, Table 1)",
        columns=["measure", "paper (TCAR 4B)", *(f"ours: {label}" for label, _ in ours)],
        rows=[
            row(
                "CLINC150 accuracy: gold agent in chosen set, all queries (%)",
                PAPER["accuracy"],
                lambda s: pct(s.route_accuracy),
            ),
            row("same, in-scope queries only (%)", None, lambda s: pct(s.route_accuracy_in_scope)),
            row(
                "same, without the reasoning block (%)", PAPER["accuracy_no_reason"], lambda s: None
            ),
            row(
                "mean agents chosen (ours: per routed query)",
                PAPER["mean_agents"],
                lambda s: num(s.mean_agents_routed),
            ),
        ],
        note="The paper routes CLINC150's intents (an intent is an agent) with a fine-tuned "
        "4B reasoning model; ours is the offline lexical router with no model. The paper "
        "gives its mean agents (1.37) without the dataset it is over, and does not say "
        "how the paper scores out-of-scope queries; ours count as correct when the router "
        "chose oos. The shared data README states no published CLINC150 baselines, so none "
        "are quoted.",
    )


def val_table(rows: list[tuple[str, TeamParams, RoutingSummary, int]]) -> TableRecord:
    return TableRecord(
        title="Tuning on the val split (the chosen grid points)",
        columns=[
            "team",
            "grid points",
            "lexical_k",
            "min sim",
            "ratio",
            "intent_k",
            "intent min sim",
            "in-scope acc %",
            "oos recall %",
            "objective %",
        ],
        rows=[
            [
                label,
                n,
                p.lexical_k,
                p.lexical_min_similarity,
                p.lexical_ratio,
                p.intent_k if label.startswith("domain") else None,
                p.intent_min_similarity if label.startswith("domain") else None,
                pct(s.in_scope_accuracy),
                pct(s.oos_recall),
                pct(balanced(s)),
            ]
            for label, p, s, n in rows
        ],
        note="objective: the mean of in-scope accuracy and oos recall on val (3,000 in-scope, "
        "100 out-of-scope queries); ties go to the earlier grid point.",
    )


def grade(task: Task, out: TCARResult, calls: list[tuple[str, int]]) -> float:
    """1 when the final answer's label is the gold intent (``oos`` for a decline)."""
    return 1.0 if predicted_label(out.final, out.answers) == (task.gold or OOS) else 0.0


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        data = load_dataset("clinc150")
    except DataUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    train, val = data.split("train"), data.split("val")
    test = data.split("test")
    tasks = spread(test.tasks, args.limit)
    test_set = Dataset(
        name=data.name, source=data.source, license=data.license, copyable=True, tasks=tasks
    )
    n_oos = sum(1 for t in tasks if t.gold == OOS)
    print(
        f"CLINC150: agents from the train split ({sum(t.gold != OOS for t in train)} in-scope "
        f"queries), thresholds tuned on val ({len(val)} queries), measured on test: "
        f"{len(tasks)} queries ({len(tasks) - n_oos} in-scope, {n_oos} out-of-scope)"
    )
    grids = GRIDS[args.grid]
    teams: dict[Level, ClincTeam] = {lvl: build_team(train, lvl) for lvl in grids}
    tuned: dict[Level, TeamParams] = {}
    val_rows: list[tuple[str, TeamParams, RoutingSummary, int]] = []
    for level, grid in grids.items():
        t0 = time.perf_counter()
        sim = Simulator(
            teams[level],
            val.tasks,
            max_lexical_k=max(grid["lexical_k"]),
            max_intent_k=max(grid.get("intent_k", [1])),
        )
        ranked = tune(sim, grid)
        params, summary = ranked[0]
        tuned[level] = params
        val_rows.append((f"{level} agents", params, summary, len(ranked)))
        print(
            f"tuned the {level} team on val over {len(ranked)} grid points in "
            f"{time.perf_counter() - t0:.0f} s: {params.model_dump()} -> in-scope accuracy "
            f"{summary.in_scope_accuracy:.3f}, oos recall {summary.oos_recall:.3f}"
        )

    sweep = sorted({*SWEEP, tuned["domain"].lexical_min_similarity})
    plan: list[tuple[str, Level, TeamParams]] = []
    for m in sweep:
        is_tuned = m == tuned["domain"].lexical_min_similarity
        label = f"domain agents, min sim {m:g}" + (" (tuned)" if is_tuned else "")
        params = tuned["domain"].model_copy(update={"lexical_min_similarity": m})
        plan.append((label, "domain", params))
    best = tuned["domain"]
    for r in RATIO_SWEEP:
        if r != best.lexical_ratio:
            label = f"domain agents, min sim {best.lexical_min_similarity:g}, ratio {r:g}"
            plan.append((label, "domain", best.model_copy(update={"lexical_ratio": r})))
    no_oos = {"lexical_min_similarity": 0.0, "intent_min_similarity": 0.0}
    plan.append((NO_OOS["domain"], "domain", best.model_copy(update=no_oos)))
    plan.append((TUNED_INTENT, "intent", tuned["intent"]))
    plan.append((NO_OOS["intent"], "intent", tuned["intent"].model_copy(update=no_oos)))

    location = args.store or "memory:"
    configs: list[EvalConfig] = []
    rows: list[tuple[str, RoutingSummary]] = []
    by_label: dict[str, RoutingSummary] = {}
    checks: list[str] = []
    sims: dict[Level, Simulator] = {}
    with open_store(location) as store:
        for label, level, params in plan:
            team = teams[level]
            t0 = time.perf_counter()
            report = await evaluate(
                team.pipeline(params, name=f"tcar-clinc150-{level}"),
                test_set,
                store,
                split="test",
                parallel=args.parallel,
                services=team.services(params),
                grader=grade,
                describe=functools.partial(details_of, team),
            )
            if report.failed:
                bad = next(r for r in report.results if not r.ok)
                print(f"{label}: {report.failed} runs failed, e.g. {bad.task}: {bad.error}")
                return 1
            outcomes = [outcome_of(r.details) for r in report.results]
            if level not in sims:
                sims[level] = Simulator(
                    team,
                    tasks,
                    max_lexical_k=max(p.lexical_k for _, lv, p in plan if lv == level),
                    max_intent_k=max(p.intent_k for _, lv, p in plan if lv == level),
                )
            agree = sum(sims[level].outcome(n, params) == o for n, o in enumerate(outcomes))
            checks.append(f"{label}: {agree}/{len(outcomes)}")
            summary = summarize(outcomes)
            rows.append((label, summary))
            by_label[label] = summary
            cfg = config_of(
                report,
                label,
                {"level": level, **params.model_dump(), "max_agents": 3, "refiner": "offline"},
            )
            cfg.summary["tcar"] = summary.as_dict()
            configs.append(cfg)
            print(
                f"  {label}: in-scope {summary.in_scope_accuracy or 0:.3f}, oos recall "
                f"{summary.oos_recall if summary.oos_recall is not None else float('nan'):.3f}, "
                f"route acc {summary.route_accuracy or 0:.3f}, mean agents "
                f"{summary.mean_agents or 0:.2f}; ${report.cost_usd:.2f}; "
                f"{time.perf_counter() - t0:.0f} s; simulation agrees on {agree}/{len(outcomes)}"
            )

    tuned_label = next(label for label, _, _ in plan if label.endswith("(tuned)"))
    tables = [
        answers_table(rows),
        routing_table(rows),
        paper_table(
            [
                ("intent agents, tuned", by_label[TUNED_INTENT]),
                ("intent agents, no oos threshold", by_label[NO_OOS["intent"]]),
                ("domain agents, tuned", by_label[tuned_label]),
            ]
        ),
        val_table(val_rows),
    ]
    for t in tables:
        print_table(t)
    seconds = time.perf_counter() - started
    command = "python reproductions/eval_tcar_clinc.py" + "".join(
        f" {flag} {value}"
        for flag, value in [
            ("--limit", args.limit),
            ("--parallel", args.parallel),
            ("--grid", args.grid if args.grid != "full" else None),
            ("--store", args.store),
            ("--save", args.save),
        ]
        if value is not None
    )
    ev = EvalFile(
        title="TCAR-style routing on CLINC150 with the offline router",
        dataset=data.name,
        split="test",
        tasks=len(tasks),
        seed=0,
        store=None if location.startswith("memory") else location,
        command=command,
        configs=configs,
        tables=tables,
        notes=[
            "Agents built from the train split; thresholds tuned on val only; measured on test.",
            "No model is called (offline lexical router, offline refiner): cost is $0 for "
            "every configuration, so there is no cost-quality curve.",
            "Simulation used for tuning agrees with the recorded test runs: " + "; ".join(checks),
            f"Data: {data.source}; license {data.license}.",
            f"Wall time {seconds:.0f} s.",
        ],
    )
    path = save(ev, args.save)
    print(
        f"\nsaved {path} ({len(configs)} configurations x {len(tasks)} runs); "
        f"runs in {'memory (gone at exit)' if ev.store is None else ev.store}; "
        f"total {seconds:.0f} s"
    )
    return 0


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
        "--grid", choices=sorted(GRIDS), default="full", help="tuning grid (small: quick look)"
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.parallel < 1:
        parser.error(f"--parallel must be at least 1, got {args.parallel}")
    return anyio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
