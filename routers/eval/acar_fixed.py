"""The fixed-mode ACAR agent and the rule judge, for the "always" rows of the ACAR table.

ACAR (arXiv 2602.21231) compares, on the same tasks, σ-routing (:mod:`routers.acar`) with
one model, two models always and three models always; :mod:`routers.eval.acar_table`
measures that table on a recorded dataset. This module holds the agent and the judge those
rows run with:

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
  (the MoT recordings): whitespace collapsed, empty text is "no answer".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
from orch import Context, agent
from routers.acar import (
    ACARConfig,
    Mode,
    Task,
    judge_prompt,
    majority,
    parse_verdict,
    sigma,
)
from routers.extract import EXTRACTORS, extractor

from .dataset import Dataset

__all__ = [
    "AS_RECORDED",
    "FixedModeConfig",
    "FixedModeResult",
    "JudgeRule",
    "RuleJudge",
    "acar_fixed",
    "as_recorded",
    "judged_responses",
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
