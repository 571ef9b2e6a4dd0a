"""The ACAR table on recorded data: σ-routing against fixed-mode baselines, same tasks.

ACAR (arXiv 2602.21231) compares, on the same tasks, one model, two models always, three
models always and σ-routing (:mod:`routers.acar`), with accuracy, cost, the share of tasks
per mode and the agreement-but-wrong rate. This module holds what measuring that table on a
recorded dataset needs beyond the ACAR agent itself:

* :data:`acar_fixed` (``acar-fixed``): the ACAR protocol with the mode *fixed* instead of
  chosen by σ, for the "always" rows. Each branch makes the same calls and combines the
  answers exactly as :data:`routers.acar.acar` does in that mode (a test checks it);
  ``probes=False`` skips the probes where the mode does not need them (the full ensemble);
* :class:`RuleJudge`: a *deterministic selection rule* standing in for the judge model of
  the full mode, because recorded data has no judge recordings. It is served through the
  model hub under a model id that names it (``rule-judge[majority-strong]``), so the judge
  step stays visible in every run's trace, and it costs nothing. It is **not an LLM
  judge**. Rules: ``majority-strong`` picks the response whose answer most of the ensemble
  gave, ties (all different) to the strong model's response, then to the earlier one;
  ``strong`` always picks the strong model's response (a judge that defers to it);
* :func:`table_hub`: the recorded models of a dataset plus the rule judges, in one hub;
* the ``as-recorded`` extractor (registered in :data:`routers.extract.EXTRACTORS`): the
  response text *is* the canonical answer, for sources that keep only the extracted answer
  (the MoT recordings): whitespace collapsed, empty text is "no answer";
* data views for the MoT recordings: :func:`mot_per_call_costs` (every call pays its whole
  few-shot prompt), :func:`pad_samples` (failed calls the source dropped count as calls
  with no answer), :func:`covering` (tasks every role's model answered);
* :class:`ACARSetup` (the role mapping: probe, strong, third model, judge rule) and
  :func:`measure`, which runs every configuration through the harness and builds the
  tables (:func:`acar_table`, :func:`mcnemar_table`, :func:`render`).

*Our choices*, beyond those of :mod:`routers.acar`: the two-model verification policy is
the design default (``majority``); the "three models, always" row runs no probes; a model
call is counted in the "calls/task" column unless it is a rule judge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, model_validator

from agents.models import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelHub,
    ModelInfo,
    ModelRegistry,
)
from agents.models.recorded import RecordedClient
from agents.models.registry import ProviderConfig
from agents.models.scripted import ScriptedClient
from orch import Context, Pipeline, agent
from routers import baselines
from routers.acar import (
    ACARConfig,
    Mode,
    Task,
    acar,
    judge_prompt,
    majority,
    parse_verdict,
    sigma,
)
from routers.extract import EXTRACTORS, extractor
from traces import ArtifactStore

from .dataset import Dataset, Sample
from .evalfile import TableRecord
from .harness import EvalReport, evaluate, router_pipeline
from .metrics import mcnemar

__all__ = [
    "AS_RECORDED",
    "COLUMNS",
    "MCNEMAR_COLUMNS",
    "MODES",
    "PAPER",
    "REFERENCE",
    "ACARSetup",
    "Configuration",
    "FixedModeConfig",
    "FixedModeResult",
    "JudgeRule",
    "Measured",
    "RuleJudge",
    "acar_fixed",
    "acar_table",
    "as_recorded",
    "configurations",
    "correct",
    "covering",
    "judged_responses",
    "mcnemar_table",
    "measure",
    "mot_per_call_costs",
    "pad_samples",
    "paper_table",
    "render",
    "rule_pick",
    "table_hub",
]

AS_RECORDED: Final = "as-recorded"


def as_recorded(text: str) -> str | None:
    """The recorded text as the answer (whitespace collapsed); empty text is no answer."""
    normal = " ".join(text.split())
    return normal or None


EXTRACTORS.setdefault(AS_RECORDED, as_recorded)


# -- the rule judge ------------------------------------------------------------------------------

JudgeRule = Literal["majority-strong", "strong"]
_RESPONSE = re.compile(r"\n\nResponse (\d+):\n")


def judged_responses(prompt: str) -> list[str]:
    """The responses listed in a :func:`routers.acar.judge_prompt`, in order."""
    marks = list(_RESPONSE.finditer(prompt))
    starts = [i for i, m in enumerate(marks) if m.group(1) == "1"]
    if not starts:
        raise ValueError("not a judge prompt: it lists no 'Response 1:'")
    marks = marks[starts[-1] :]
    out = []
    for i, m in enumerate(marks):
        if int(m.group(1)) != i + 1:
            raise ValueError(f"judge prompt lists response {m.group(1)} where {i + 1} belongs")
        end = marks[i + 1].start() if i + 1 < len(marks) else len(prompt)
        out.append(prompt[m.end() : end])
    return out


def rule_pick(answers: Sequence[str | None], rule: JudgeRule, strong: int) -> int:
    """The 0-based response a rule judge picks, given the responses' canonical answers."""
    if not 0 <= strong < len(answers):
        raise ValueError(f"strong response {strong} is not among {len(answers)} responses")
    if rule == "strong":
        return strong
    chosen = majority(list(answers), prefer=answers[strong])
    if chosen is None or answers[strong] == chosen:
        return strong
    return list(answers).index(chosen)


@dataclass(frozen=True)
class RuleJudge:
    """A deterministic selection rule in the judge's place (see the module docstring)."""

    rule: JudgeRule
    strong: int
    """0-based position of the strong model in the ensemble (its response number - 1)."""
    extractor: str = AS_RECORDED

    @property
    def model_id(self) -> str:
        return f"rule-judge[{self.rule}]"

    def verdict(self, prompt: str) -> str:
        read = extractor(self.extractor)
        answers = [read(r) for r in judged_responses(prompt)]
        return f"Response {rule_pick(answers, self.rule, self.strong) + 1}"


JUDGE_PROVIDER: Final = "rule"


def table_hub(dataset: Dataset, judges: Sequence[RuleJudge] = ()) -> ModelHub:
    """A hub serving the dataset's recorded responses at the dataset's prices (so the runs'
    own records show what each call cost, from its tokens), plus the rule judges at no
    price: a rule costs nothing. The harness costs calls from the dataset either way."""
    by_id = {j.model_id: j for j in judges}
    if len(by_id) != len(judges):
        raise ValueError("two rule judges share a model id; fix: give each rule once")
    clash = sorted(set(by_id) & set(dataset.models))
    if clash:
        raise ValueError(f"rule judge ids {clash} are model ids of dataset {dataset.name!r}")
    providers = {
        "recorded": ProviderConfig(kind="recorded", options={"data": "-"}),
        # The kind only picks a default client class; the rule client is given below.
        JUDGE_PROVIDER: ProviderConfig(kind="simulated", options={"data": "-"}),
    }
    models = {
        m: ModelInfo(
            id=m,
            provider="recorded",
            name=m,
            input_per_mtok=price.input_per_mtok if price else 0.0,
            output_per_mtok=price.output_per_mtok if price else 0.0,
        )
        for m in dataset.models
        for price in [dataset.prices.get(m)]
    }
    models |= {j: ModelInfo(id=j, provider=JUDGE_PROVIDER, name=j) for j in by_id}

    def judge(request: ChatRequest, model: ModelInfo) -> str:
        users = [m.content for m in request.messages if m.role == "user"]
        return by_id[model.name].verdict(users[-1] if users else "")

    recorded = RecordedClient("recorded", providers["recorded"], data=dataset.to_recorded_set())
    return ModelHub(
        ModelRegistry(providers, models),
        clients={"recorded": recorded, JUDGE_PROVIDER: ScriptedClient(judge)},
    )


# -- the fixed-mode agent ------------------------------------------------------------------------


class FixedModeConfig(ACARConfig):
    mode: Mode
    """The mode every task runs, whatever σ says."""
    probes: bool = True
    """Sample the probes first (needed by ``single`` and ``two-model``; the ``full`` mode
    without probes is "three models, always")."""

    @model_validator(mode="after")
    def _probes_needed(self) -> FixedModeConfig:
        if self.mode != "full" and not self.probes:
            raise ValueError(
                f"mode {self.mode!r} answers from the probes; fix: keep probes=True "
                "(only the full mode can run without them)"
            )
        return self


class FixedModeResult(BaseModel):
    answer: str | None
    mode: Mode
    sigma: float | None
    """σ of the probes (what σ-routing would have done), None without probes."""
    probe_answers: list[str | None]
    models_invoked: list[str]
    cost_usd: float


@agent(name="acar-fixed", version="1", config=FixedModeConfig)
async def acar_fixed(task: Task, ctx: Context) -> FixedModeResult:
    """ACAR with the mode fixed: the "always" baselines of the ACAR table."""
    cfg: FixedModeConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    extract = extractor(cfg.extractor)
    invoked: list[str] = []
    costs: list[float] = []

    async def call(
        model: str, prompt: str, *, temperature: float | None, sample: int, max_tokens: int
    ) -> str:
        request = ChatRequest(
            model=model,
            messages=[ChatMessage(role="user", content=prompt)],
            temperature=temperature,
            sample=sample,
            max_tokens=max_tokens,
        )
        response: ChatResponse = await hub.chat(ctx, request)
        invoked.append(model)
        costs.append(hub.registry.model(model).cost(response.usage))
        return response.text

    limit = cfg.max_tokens
    probe_answers: list[str | None] = []
    s: float | None = None
    if cfg.probes:
        for i in range(cfg.n_probes):
            text = await call(
                cfg.probe_model,
                task.question,
                temperature=cfg.probe_temperature,
                sample=i,
                max_tokens=cfg.max_tokens,
            )
            probe_answers.append(extract(text))
        s = sigma(probe_answers)
    probe_majority = majority(probe_answers)
    evidence: dict[str, Any] = {"sigma": s, "probe_answers": probe_answers}
    if cfg.mode == "single":
        answer = probe_majority
        reason = f"fixed mode single: the majority of {cfg.n_probes} probes, {answer!r}"
    elif cfg.mode == "two-model":
        verdicts = [
            extract(await call(m, task.question, temperature=None, sample=0, max_tokens=limit))
            for m in cfg.verifiers()
        ]
        evidence["verifier_answers"] = dict(zip(cfg.verifiers(), verdicts, strict=True))
        if cfg.verification == "majority":
            answer = majority([probe_majority, *verdicts], prefer=probe_majority)
        else:
            answer = probe_majority
        reason = (
            f"fixed mode two-model: probe majority {probe_majority!r}, verifiers {verdicts}; "
            f"policy {cfg.verification!r} gives {answer!r}"
        )
    else:
        texts = [
            await call(m, task.question, temperature=None, sample=0, max_tokens=limit)
            for m in cfg.ensemble
        ]
        answers = [extract(t) for t in texts]
        evidence["ensemble_answers"] = dict(zip(cfg.ensemble, answers, strict=True))
        verdict = await call(
            cfg.judge_model,
            judge_prompt(task.question, texts),
            temperature=None,
            sample=0,
            max_tokens=32,  # as routers.acar asks its judge
        )
        evidence["judge_verdict"] = verdict[:200]
        pick = parse_verdict(verdict, len(texts))
        if pick is not None:
            answer = answers[pick]
            reason = (
                f"fixed mode full: judge {cfg.judge_model} chose response {pick + 1} "
                f"({cfg.ensemble[pick]}: {answer!r})"
            )
        else:
            answer = majority(answers)
            reason = (
                f"fixed mode full: the judge's verdict was unreadable, so the ensemble "
                f"majority {answer!r} was taken"
            )
    cost = math.fsum(costs)
    ctx.decide(
        candidates=["single", "two-model", "full"],
        chosen=cfg.mode,
        scores={} if s is None else {"sigma": s},
        reason=reason,
        parameters=cfg.model_dump(mode="json"),
        evidence=evidence
        | {"models_invoked": invoked, "final_answer": answer, "cost_usd": round(cost, 12)},
    )
    return FixedModeResult(
        answer=answer,
        mode=cfg.mode,
        sigma=s,
        probe_answers=probe_answers,
        models_invoked=invoked,
        cost_usd=cost,
    )


# -- data views ----------------------------------------------------------------------------------


def _mot_prompt_key(variant: str) -> str:
    """``greedy_cot1`` and ``cot1_40`` use the ``cot1`` prompt (as the MoT adapter reads)."""
    return variant.removeprefix("greedy_").removesuffix("_40")


def mot_per_call_costs(dataset: Dataset) -> Dataset:
    """The MoT recordings with every call paying its whole few-shot prompt.

    The adapter spreads a question's prompt over the samples of one file (the repo's cost
    model: one API call with ``n`` samples), so one of a model's 20 samples carries 1/20 of
    the prompt. ACAR makes each probe and each escalation its own request, so here every
    sample's ``input_tokens`` is the whole prompt plus the question (the adapter's own
    estimates, :data:`~routers.eval.adapters.mot.PROMPT_TOKENS`); output tokens are kept.
    """
    from .adapters.mot import PROMPT_TOKENS

    kind = dataset.name.removeprefix("mot-")
    if not dataset.name.startswith("mot-") or kind not in {k for k, _ in PROMPT_TOKENS}:
        raise ValueError(f"dataset {dataset.name!r} is not a MoT dataset (mot-date, mot-gsm8k)")
    tasks = []
    for t in dataset.tasks:
        responses: dict[str, list[Sample]] = {}
        for model, samples in t.responses.items():
            variant = model.partition("[")[2].removesuffix("]")
            prompt = PROMPT_TOKENS.get((kind, _mot_prompt_key(variant)), 0) + len(t.question) // 4
            responses[model] = [s.model_copy(update={"input_tokens": prompt}) for s in samples]
        tasks.append(t.model_copy(update={"responses": responses}))
    return dataset.model_copy(update={"tasks": tasks})


def pad_samples(dataset: Dataset, model: str, n: int) -> Dataset:
    """Give ``model`` at least ``n`` samples on every task it answered: each missing one is
    a failed call (no answer, score 0, the tokens of the last recorded sample).

    Some sources drop the samples whose program failed; the recorded client would then
    serve the same sample twice and the probes would look like they agree. The tasks padded
    are listed in ``meta["padded"]`` (model -> samples added).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tasks = []
    for t in dataset.tasks:
        samples = t.responses.get(model)
        if not samples or len(samples) >= n:
            tasks.append(t)
            continue
        last = samples[-1]
        failed = Sample(
            answer=None,
            score=0.0,
            input_tokens=last.input_tokens,
            output_tokens=last.output_tokens,
            cost_usd=last.cost_usd,
        )
        added = n - len(samples)
        meta = t.meta | {"padded": dict(t.meta.get("padded", {})) | {model: added}}
        responses = t.responses | {model: [*samples, *([failed] * added)]}
        tasks.append(t.model_copy(update={"responses": responses, "meta": meta}))
    return dataset.model_copy(update={"tasks": tasks})


def covering(dataset: Dataset, models: Sequence[str]) -> Dataset:
    """The tasks on which every one of ``models`` has a recorded sample."""
    return dataset.model_copy(
        update={"tasks": [t for t in dataset.tasks if all(t.responses.get(m) for m in models)]}
    )


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

    def fixed(label: str, name: str, rule: JudgeRule, **extra: Any) -> Configuration:
        params = setup.acar_params(rule) | extra
        return Configuration(
            label, router_pipeline(acar_fixed.with_config(**params), name), params, "fixed"
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
            mode="single",
        ),
        fixed("two models, always", "always-two", setup.judge, mode="two-model"),
        fixed("three models, always", "always-three", setup.judge, mode="full", probes=False),
        routing(REFERENCE, "acar", setup.judge),
    ]
    alt = setup.alternative_judge
    if alt is not None and alt != setup.judge:
        out += [
            fixed(
                f"three models, always · judge={alt}",
                f"always-three-{alt}",
                alt,
                mode="full",
                probes=False,
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
            "two-sided binomial test (routers.eval.metrics.mcnemar)."
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
    """The table as aligned plain text: title, header, rows, note (what the example prints)."""
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
        out.configs.append((config, report))
        if progress is not None:
            progress(config.label, report)
    return out
