"""The rule judge and the hub of the ACAR table's runs (no judge recordings exist).

ACAR (arXiv 2602.21231) compares, on the same tasks, σ-routing with one model, two models
always and three models always; :mod:`orch_reproductions.acar_table` measures that table on
a recorded dataset with the real ACAR agent (:data:`routers._acar`, its ``fixed_mode`` option
for the "always" rows). Its full mode asks a judge model, and the recordings have none, so:

* :class:`RuleJudge`: a *deterministic selection rule* standing in for the judge model. It
  is served through the model hub under a model id that names it
  (``rule-judge[majority-strong]``), so the judge step stays visible in every run's trace,
  and it costs nothing. It is **not an LLM judge**. Rules: ``majority-strong`` picks the
  response whose answer most of the ensemble gave, ties (all different) to the strong
  model's response, then to the earlier one; ``strong`` always picks the strong model's
  response (a judge that defers to it);
* :func:`table_hub`: the recorded models of a dataset plus the rule judges, in one hub.

A rule reads the responses with an extractor (default ``as-recorded``,
:func:`routers._extract.as_recorded`: the MoT recordings keep only the extracted answer).
This module never calls a real model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from agents.models import (
    ChatRequest,
    ModelHub,
    ModelInfo,
    ModelRegistry,
    ProviderConfig,
    RecordedClient,
    ScriptedClient,
)
from routers import AS_RECORDED, extractor, majority
from routers.eval import Dataset

__all__ = [
    "JUDGE_PROVIDER",
    "JudgeRule",
    "RuleJudge",
    "judged_responses",
    "rule_pick",
    "table_hub",
]

# -- the rule judge ------------------------------------------------------------------------------

JudgeRule = Literal["majority-strong", "strong"]
_RESPONSE = re.compile(r"\n\nResponse (\d+):\n")


def judged_responses(prompt: str) -> list[str]:
    """The responses listed in a :func:`routers._acar.judge_prompt`, in order."""
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
