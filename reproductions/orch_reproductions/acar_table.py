"""The ACAR table on recorded data: σ-routing against fixed-mode baselines, same tasks.

ACAR (arXiv 2602.21231) compares, on the same tasks, one model, two models always, three
models always and σ-routing (:mod:`routers._acar`), with accuracy, cost, the share of tasks
per mode and the agreement-but-wrong rate. This module measures that table on a recorded
dataset. Every ACAR row runs the real ACAR agent: σ-routing as it is, the "always" rows with
its ``fixed_mode`` option. The rule judge and the hub that serves it are in
:mod:`orch_reproductions.acar_judge`, the data views for the MoT recordings in
:mod:`orch_reproductions.mot_views`. Here:

* :class:`ACARSetup` (the role mapping: probe, strong, third model, judge rule) and
  :func:`configurations`, every row of the table;
* :func:`measure`, which runs every configuration through the harness and builds the
  tables (:func:`acar_table`, :func:`mcnemar_table`, :func:`render`).

*Our choices*, beyond those of :mod:`routers._acar`: the two-model verification policy is
the design default (``majority``); the "three models, always" row runs no probes
(``fixed_mode="full-no-probes"``), so its σ is not measured and its runs carry none in the
table; a model call is counted in the "calls/task" column unless it is a rule judge.

This module never re-implements ACAR: a row that needs another behaviour needs an option of
the agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from orch import Pipeline
from routers import AS_RECORDED, FixedMode, acar, baselines
from routers.eval import Dataset, EvalReport, TableRecord, evaluate, mcnemar, router_pipeline
from traces import ArtifactStore

from .acar_judge import JudgeRule, RuleJudge, table_hub

__all__ = [
    "COLUMNS",
    "MCNEMAR_COLUMNS",
    "MODES",
    "PAPER",
    "REFERENCE",
    "ACARSetup",
    "Configuration",
    "Measured",
    "acar_table",
    "configurations",
    "correct",
    "mcnemar_table",
    "measure",
    "paper_table",
    "render",
]


# -- the setup and the configurations ------------------------------------------------------------


@dataclass(frozen=True)
class ACARSetup:
    """How the paper's roles map onto a dataset's models.

    The paper samples a cheap probe model (Gemini 2.0 Flash) and escalates to two other
    models (Claude Sonnet 4, GPT-4o) and a judge. Here: ``probe`` is sampled ``n_probes``
    times, the ensemble is ``[strong, probe, third]`` (so the two-model verifiers are
    ``strong`` and ``third``), and the judge is a :class:`RuleJudge`.
    """

    probe: str
    strong: str
    third: str
    judge: JudgeRule = "majority-strong"
    alternative_judge: JudgeRule | None = "strong"
    """A second judge rule measured as extra rows (None: none)."""
    n_probes: int = 3
    extractor: str = AS_RECORDED
    verification: Literal["majority", "probe"] = "majority"
    roles: str = ""
    """One line on why these models play these roles (for the table note)."""

    @property
    def ensemble(self) -> list[str]:
        return [self.strong, self.probe, self.third]

    @property
    def models(self) -> list[str]:
        return self.ensemble

    def rule_judge(self, rule: JudgeRule) -> RuleJudge:
        return RuleJudge(rule=rule, strong=0, extractor=self.extractor)

    def judges(self) -> list[RuleJudge]:
        rules = [self.judge] + ([self.alternative_judge] if self.alternative_judge else [])
        return [self.rule_judge(r) for r in dict.fromkeys(rules)]

    def acar_params(self, rule: JudgeRule) -> dict[str, Any]:
        return {
            "probe_model": self.probe,
            "ensemble": self.ensemble,
            "judge_model": self.rule_judge(rule).model_id,
            "n_probes": self.n_probes,
            "extractor": self.extractor,
            "verification": self.verification,
        }


@dataclass(frozen=True)
class Configuration:
    label: str
    pipeline: Pipeline
    params: dict[str, Any]
    kind: str
    """``single``, ``fixed`` or ``routing``."""

    @property
    def measures_sigma(self) -> bool:
        """Whether the runs sample the probes, so that their σ is a measurement."""
        return self.kind != "single" and self.params.get("fixed_mode") != "full-no-probes"


REFERENCE: Final = "σ-routing (ACAR)"


def configurations(setup: ACARSetup) -> list[Configuration]:
    """Every row of the table, in print order; σ-routing is labelled :data:`REFERENCE`."""
    out: list[Configuration] = []
    for role, model in (("weak", setup.probe), ("third", setup.third), ("strong", setup.strong)):
        params: dict[str, Any] = {"model": model, "extractor": setup.extractor}
        out.append(
            Configuration(
                f"single: {role} ({model})",
                router_pipeline(baselines.single.with_config(**params), f"single-{role}"),
                params,
                "single",
            )
        )

    def fixed(label: str, name: str, rule: JudgeRule, mode: FixedMode) -> Configuration:
        params = setup.acar_params(rule) | {"fixed_mode": mode}
        return Configuration(
            label, router_pipeline(acar.with_config(**params), name), params, "fixed"
        )

    def routing(label: str, name: str, rule: JudgeRule) -> Configuration:
        params = setup.acar_params(rule)
        return Configuration(
            label, router_pipeline(acar.with_config(**params), name), params, "routing"
        )

    out += [
        fixed(
            f"probes only: weak x{setup.n_probes}, majority",
            "always-probes",
            setup.judge,
            "single",
        ),
        fixed("two models, always", "always-two", setup.judge, "two-model"),
        fixed("three models, always", "always-three", setup.judge, "full-no-probes"),
        routing(REFERENCE, "acar", setup.judge),
    ]
    alt = setup.alternative_judge
    if alt is not None and alt != setup.judge:
        out += [
            fixed(
                f"three models, always · judge={alt}",
                f"always-three-{alt}",
                alt,
                "full-no-probes",
            ),
            routing(f"σ-routing · judge={alt}", f"acar-{alt}", alt),
        ]
    return out


# -- the tables ----------------------------------------------------------------------------------

MODES: Final = ("single", "two-model", "full")
COLUMNS: Final = [
    "configuration",
    "calls/task",
    "accuracy",
    "$/task",
    "$ total",
    "single",
    "two-model",
    "full",
    "agree-but-wrong",
    "p vs σ-routing",
]
"""``single``/``two-model``/``full``: the share of tasks in each mode (for σ-routing the
shares of σ = 0, 0.5 and 1); ``agree-but-wrong``: the share of tasks with σ = 0 and a wrong
answer (configurations that sample the probes); ``p``: McNemar's exact test."""
MCNEMAR_COLUMNS: Final = [
    "configuration",
    "tasks",
    "accuracy",
    "right only here",
    "right only with σ-routing",
    "p (exact, two-sided)",
]


def correct(report: EvalReport) -> list[bool]:
    return [r.score >= 1.0 for r in report.results]


def _p(x: float) -> float:
    return float(f"{x:.3g}")


def _same_tasks(rows: Sequence[tuple[str, EvalReport]]) -> list[str]:
    tasks = [r.task for r in rows[0][1].results]
    for label, report in rows:
        if [r.task for r in report.results] != tasks:
            raise ValueError(f"configuration {label!r} ran other tasks than {rows[0][0]!r}")
    return tasks


def _reference(rows: Sequence[tuple[str, EvalReport]], reference: str) -> EvalReport:
    for label, report in rows:
        if label == reference:
            return report
    raise ValueError(f"no configuration {reference!r} among {[label for label, _ in rows]}")


def acar_table(
    rows: Sequence[tuple[str, EvalReport]],
    *,
    title: str,
    reference: str = REFERENCE,
    not_models: Sequence[str] = (),
    note: str | None = None,
) -> TableRecord:
    """The ACAR table: one row per configuration (same tasks), McNemar against
    ``reference``. ``not_models`` are call targets not counted as model calls (rule
    judges)."""
    if not rows:
        raise ValueError("the ACAR table needs at least one configuration")
    _same_tasks(rows)
    ref = correct(_reference(rows, reference))
    skip = set(not_models)
    out: list[list[str | float | int | None]] = []
    for label, report in rows:
        n = report.tasks
        calls = sum(1 for r in report.results for m, _ in r.calls if m not in skip)
        shares = report.mode_shares()
        abw = report.agreement_but_wrong()
        p = None if label == reference else _p(mcnemar(correct(report), ref).p_value)
        out.append(
            [
                label,
                round(calls / n, 2) if n else None,
                round(report.accuracy, 3),
                round(report.cost_per_task, 6),
                round(report.cost_usd, 4),
                *[round(shares[m], 3) if m in shares else None for m in MODES],
                None if abw is None else round(abw, 3),
                p,
            ]
        )
    return TableRecord(title=title, columns=list(COLUMNS), rows=out, note=note)


def mcnemar_table(
    rows: Sequence[tuple[str, EvalReport]], *, title: str, reference: str = REFERENCE
) -> TableRecord:
    """McNemar's exact test of every configuration against ``reference``, same tasks."""
    _same_tasks(rows)
    ref = correct(_reference(rows, reference))
    out: list[list[str | float | int | None]] = []
    for label, report in rows:
        if label == reference:
            continue
        test = mcnemar(correct(report), ref)
        out.append(
            [
                label,
                report.tasks,
                round(report.accuracy, 3),
                test.only_a,
                test.only_b,
                _p(test.p_value),
            ]
        )
    return TableRecord(
        title=title,
        columns=list(MCNEMAR_COLUMNS),
        rows=out,
        note=(
            f"Paired on the same tasks: 'right only here' counts the tasks this configuration "
            f"got right and {reference} wrong, and the other way round; p is McNemar's exact "
            "two-sided binomial test (routers.eval.mcnemar)."
        ),
    )


PAPER: Final[list[tuple[str, float, float]]] = [
    ("single model", 0.454, 17.04),
    ("two models, always", 0.544, 20.64),
    ("σ-routing", 0.556, 20.34),
    ("three models, always", 0.636, 20.64),
]
"""ACAR's reported table (1,510 tasks; Claude Sonnet 4, GPT-4o, Gemini 2.0 Flash as probe):
(configuration, accuracy, total cost in USD). Share per mode: single 32.9%, two-model
21.3%, full 45.8%."""


def paper_table() -> TableRecord:
    return TableRecord(
        title="ACAR paper, as reported (arXiv 2602.21231): not our measurement",
        columns=[
            "configuration",
            "accuracy",
            "$ total",
            "single",
            "two-model",
            "full",
        ],
        rows=[
            [label, acc, cost, *((0.329, 0.213, 0.458) if label == "σ-routing" else (None,) * 3)]
            for label, acc, cost in PAPER
        ],
        note=(
            "1,510 tasks (MathArena, Reasoning Gym, LiveCodeBench, SuperGPQA), Claude Sonnet 4, "
            "GPT-4o and Gemini 2.0 Flash (probe), an LLM judge; agreement-but-wrong bounds "
            "σ-routing about 8 points below three models always."
        ),
    )


def _cell(value: str | float | int | None, column: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if column == "$/task":
        return f"{value:.6f}"
    if column == "$ total":
        return f"{value:.4f}" if value < 10 else f"{value:.2f}"
    if column == "calls/task":
        return f"{value:.2f}"
    if column.startswith("p "):
        return f"{value:.3g}"
    return f"{value:.3f}"


def render(table: TableRecord) -> str:
    """The table as aligned plain text: title, header, rows, note (what the script prints)."""
    cells = [[_cell(v, c) for v, c in zip(row, table.columns, strict=True)] for row in table.rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(table.columns)]

    def line(values: Sequence[str]) -> str:
        first, *rest = values
        parts = [first.ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [table.title, line(table.columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    if table.note:
        out.append(f"note: {table.note}")
    return "\n".join(out)


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Measured:
    """Every configuration's report on the same tasks, and the tables built from them."""

    dataset: str
    setup: ACARSetup
    configs: list[tuple[Configuration, EvalReport]] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[str, EvalReport]]:
        return [(c.label, r) for c, r in self.configs]

    def report(self, label: str) -> EvalReport:
        return _reference(self.rows, label)

    @property
    def judge_ids(self) -> list[str]:
        return [j.model_id for j in self.setup.judges()]

    def tables(self, note: str | None = None) -> list[TableRecord]:
        n = self.configs[0][1].tasks if self.configs else 0
        return [
            acar_table(
                self.rows,
                title=f"ACAR table: {self.dataset}, test split, {n} tasks",
                not_models=self.judge_ids,
                note=note,
            ),
            mcnemar_table(self.rows, title=f"McNemar vs σ-routing: {self.dataset}, {n} tasks"),
        ]

    def recoverable(self) -> tuple[int, int]:
        """(tasks σ-routing got wrong with σ = 0, of which "three models, always" got right)."""
        ref = self.report(REFERENCE)
        three = {r.task: r.score >= 1.0 for r in self.report("three models, always").results}
        abw = [r.task for r in ref.results if r.sigma == 0 and r.score < 1.0]
        return len(abw), sum(1 for t in abw if three[t])


async def measure(
    dataset: Dataset,
    setup: ACARSetup,
    store: ArtifactStore,
    *,
    limit: int | None = None,
    parallel: int = 4,
    seed: int = 0,
    progress: Callable[[str, EvalReport], None] | None = None,
) -> Measured:
    """Run every configuration of :func:`configurations` through the harness on the first
    ``limit`` tasks of ``dataset`` (already the split to report on: it is run whole, as
    ``split="all"``). Each task of each configuration is a recorded run in ``store``."""
    missing = [m for m in setup.models if m not in dataset.models]
    if missing:
        raise ValueError(
            f"dataset {dataset.name!r} has no model {missing}; fix: map the roles onto its "
            f"models ({', '.join(dataset.models)})"
        )
    hub = table_hub(dataset, setup.judges())
    out = Measured(dataset=dataset.name, setup=setup)
    for config in configurations(setup):
        report = await evaluate(
            config.pipeline,
            dataset,
            store,
            split="all",
            limit=limit,
            parallel=parallel,
            seed=seed,
            services={"models": hub},
        )
        if report.failed:
            first = next(r for r in report.results if not r.ok)
            raise RuntimeError(
                f"{config.label}: {report.failed} of {report.tasks} runs failed; first: "
                f"{first.task}: {first.error}"
            )
        if not config.measures_sigma:
            # Without probes the agent's σ of 1 is assumed, not measured: no σ for the table
            # (agreement-but-wrong is a measure of the rows that sample the probes).
            report.results = [dataclasses.replace(r, sigma=None) for r in report.results]
        out.configs.append((config, report))
        if progress is not None:
            progress(config.label, report)
    return out
