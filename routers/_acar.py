"""ACAR: σ-variance escalation from one model to three (arXiv 2602.21231).

A probe model is sampled N times (default 3, temperature above 0); an extractor maps each
response to a canonical answer; σ = (distinct answers - 1) / (N - 1), where every response
with no readable answer counts as its own distinct answer. Then, escalating only upward:

* σ = 0 → **single**: the agreed probe answer; no further calls;
* 0 < σ < 1 → **two-model**: the probe majority, checked by two further models. The paper
  does not say how verification may change the answer. *Our choice* (the default policy
  ``"majority"``): the final answer is the majority over the probe majority and the two
  verifiers' answers, ties to the probe majority. ``"probe"`` keeps the probe majority;
* σ = 1 → **full ensemble**: all ensemble models answer and a judge picks one response
  (an unreadable verdict falls back to the majority of the ensemble, and says so).

The calls of a stage (the probes; the verifiers; the ensemble) are made at once
(``ctx.gather``), so a stage takes as long as its slowest call; they are recorded, listed and
costed in the order above whichever answers first, so the record is the one of the same calls
made in turn. Every call is a recorded effect through the model hub, and the router records
one Decision: σ, the probe answers, the mode, the reason, the models invoked, the final answer
and the cost of the calls (latency is wall-clock time and stays in the event log).

**Fixed modes** (``fixed_mode``, for the "always" baselines of ACAR's table): the mode is
forced instead of chosen by σ. The probes are still sampled and σ still reported (what
σ-routing would have done), and each mode makes the same calls and combines the answers as
above. ``full-no-probes`` ("three models, always") skips the probes and acts as if σ were 1:
the result's ``probe_answers`` is empty and its ``sigma`` is 1.0, an assumption, not a
measurement (the Decision's evidence says ``sigma: None``). Unset (None), the config's
canonical form has no ``fixed_mode`` key, so σ-routing configs keep their hashes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from agents.models import ChatMessage, ChatRequest, ChatResponse, ModelHub
from orch import Context, agent
from routers._extract import extractor

__all__ = [
    "ACARConfig",
    "ACARResult",
    "FixedMode",
    "Mode",
    "Task",
    "acar",
    "escalation_mode",
    "judge_prompt",
    "majority",
    "parse_verdict",
    "sigma",
]

Mode = Literal["single", "two-model", "full"]
FixedMode = Literal["single", "two-model", "full", "full-no-probes"]
_FORCED: dict[FixedMode, Mode] = {
    "single": "single",
    "two-model": "two-model",
    "full": "full",
    "full-no-probes": "full",
}


def sigma(answers: list[str | None]) -> float:
    """σ = (distinct - 1) / (N - 1); each ``None`` (no readable answer) is its own answer."""
    n = len(answers)
    if n < 2:
        raise ValueError(f"σ needs at least 2 probe answers, got {n}; fix: use n_probes >= 2")
    distinct = len({a for a in answers if a is not None}) + sum(a is None for a in answers)
    return (distinct - 1) / (n - 1)


def escalation_mode(s: float) -> Mode:
    """The mode σ calls for (for N = 3: 0 → single, 0.5 → two-model, 1 → full)."""
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise ValueError(f"σ must be in [0, 1], got {s!r}")
    if s == 0.0:
        return "single"
    return "full" if s == 1.0 else "two-model"


def majority(answers: list[str | None], prefer: str | None = None) -> str | None:
    """Most frequent readable answer; ties go to ``prefer``, then to the earliest given."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    leaders = [a for a in dict.fromkeys(a for a in answers if a is not None) if counts[a] == top]
    if prefer in leaders:
        return prefer
    return leaders[0]


class Task(BaseModel):
    question: str


class ACARConfig(BaseModel):
    probe_model: str
    ensemble: list[str] = Field(min_length=3, max_length=3)
    """The three models of the full ensemble; the two-model mode uses the two that are not
    the probe (or the first two when the probe is not among them)."""
    judge_model: str
    n_probes: int = Field(default=3, ge=2)
    probe_temperature: float = Field(default=0.7, gt=0)
    extractor: str = "option"
    verification: Literal["majority", "probe"] = "majority"
    max_tokens: int = Field(default=512, gt=0)
    fixed_mode: FixedMode | None = None
    """Force this mode on every task instead of the one σ calls for (see the module
    docstring); None is σ-routing."""

    @model_validator(mode="after")
    def _distinct(self) -> ACARConfig:
        if len(set(self.ensemble)) != 3:
            raise ValueError(f"ensemble models must be distinct, got {self.ensemble}")
        extractor(self.extractor)  # fails early on an unknown name
        return self

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The config hash is the hash of this dump: a σ-routing config must dump as it did
        # before fixed_mode existed, or every recorded ACAR spec hash would change.
        data: dict[str, Any] = handler(self)
        if self.fixed_mode is None:
            data.pop("fixed_mode", None)
        return data

    def verifiers(self) -> list[str]:
        others = [m for m in self.ensemble if m != self.probe_model]
        return others[:2]


class ACARResult(BaseModel):
    answer: str | None
    sigma: float
    mode: Mode
    probe_answers: list[str | None]
    models_invoked: list[str]
    cost_usd: float


def _ask(
    model: str, question: str, *, temperature: float | None, sample: int, max_tokens: int
) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[ChatMessage(role="user", content=question)],
        temperature=temperature,
        sample=sample,
        max_tokens=max_tokens,
    )


_VERDICT = re.compile(r"\b(?:response|answer)\s*#?\s*(\d+)\b", re.I)


def parse_verdict(text: str, n: int) -> int | None:
    """The 1-based response number a judge chose, as a 0-based index, or None."""
    found = _VERDICT.findall(text)
    if not found:
        bare = re.fullmatch(r"\s*(\d+)\s*\.?\s*", text)
        found = [bare.group(1)] if bare else []
    if not found:
        return None
    k = int(found[-1])
    return k - 1 if 1 <= k <= n else None


def judge_prompt(question: str, responses: list[str]) -> str:
    listed = "\n\n".join(f"Response {i + 1}:\n{r}" for i, r in enumerate(responses))
    return (
        "Several assistants answered the question below. Pick the response that answers it "
        "correctly. Reply with 'Response N' and nothing else.\n\n"
        f"Question:\n{question}\n\n{listed}"
    )


@agent(name="acar-router", version="1", config=ACARConfig)
async def acar(task: Task, ctx: Context) -> ACARResult:
    """σ-variance escalation; see the module docstring."""
    cfg: ACARConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    extract = extractor(cfg.extractor)
    invoked: list[str] = []
    cost = 0.0

    async def call(*requests: ChatRequest) -> list[ChatResponse]:
        # The calls run at once; they are recorded, listed and costed in the order given
        # (the cost summed in that order, so its float is the same whatever answers first).
        nonlocal cost
        responses = await ctx.gather(*(hub.chat(ctx, r) for r in requests))
        for request, response in zip(requests, responses, strict=True):
            invoked.append(request.model)
            cost += hub.registry.model(request.model).cost(response.usage)
        return responses

    fixed = cfg.fixed_mode
    probe_answers: list[str | None] = []
    if fixed != "full-no-probes":
        probes = await call(
            *(
                _ask(
                    cfg.probe_model,
                    task.question,
                    temperature=cfg.probe_temperature,
                    sample=i,
                    max_tokens=cfg.max_tokens,
                )
                for i in range(cfg.n_probes)
            )
        )
        probe_answers = [extract(p.text) for p in probes]
        s: float | None = sigma(probe_answers)
    else:
        s = None
    assumed = 1.0 if s is None else s  # full-no-probes acts as if σ were 1
    mode = escalation_mode(assumed) if fixed is None else _FORCED[fixed]
    probe_majority = majority(probe_answers)
    evidence: dict[str, Any] = {"sigma": s, "probe_answers": probe_answers}
    # How the mode came about, for the reason (σ-routing's wording is part of its records).
    if fixed is None:
        why = f"probes {'disagree' if mode == 'two-model' else 'all differ'} (σ={assumed:.2f})"
    else:
        why = f"fixed mode {fixed} " + ("(no probes)" if s is None else f"(σ={s:.2f})")

    if mode == "single":
        answer = probe_majority
        if fixed is None:
            reason = f"all {cfg.n_probes} probes of {cfg.probe_model} agree on {answer!r} (σ=0)"
        else:
            reason = (
                f"{why}: the majority of {cfg.n_probes} probes of {cfg.probe_model}, {answer!r}"
            )
    elif mode == "two-model":
        checks = await call(
            *(
                _ask(m, task.question, temperature=None, sample=0, max_tokens=cfg.max_tokens)
                for m in cfg.verifiers()
            )
        )
        verdicts = [extract(r.text) for r in checks]
        evidence["verifier_answers"] = dict(zip(cfg.verifiers(), verdicts, strict=True))
        if cfg.verification == "majority":
            answer = majority([probe_majority, *verdicts], prefer=probe_majority)
        else:
            answer = probe_majority
        reason = (
            f"{why}: probe majority {probe_majority!r}, verifiers "
            f"{verdicts}; policy {cfg.verification!r} gives {answer!r}"
        )
    else:
        responses = await call(
            *(
                _ask(m, task.question, temperature=None, sample=0, max_tokens=cfg.max_tokens)
                for m in cfg.ensemble
            )
        )
        answers = [extract(r.text) for r in responses]
        evidence["ensemble_answers"] = dict(zip(cfg.ensemble, answers, strict=True))
        (verdict,) = await call(
            _ask(
                cfg.judge_model,
                judge_prompt(task.question, [r.text for r in responses]),
                temperature=None,
                sample=0,
                max_tokens=32,
            )
        )
        pick = parse_verdict(verdict.text, len(responses))
        evidence["judge_verdict"] = verdict.text[:200]
        if pick is not None:
            answer = answers[pick]
            reason = (
                f"{why}: full ensemble; judge {cfg.judge_model} chose "
                f"response {pick + 1} ({cfg.ensemble[pick]}: {answer!r})"
            )
        else:
            answer = majority(answers)
            reason = (
                f"{why}: full ensemble; the judge's verdict was "
                f"unreadable, so the ensemble majority {answer!r} was taken"
            )
    ctx.decide(
        candidates=["single", "two-model", "full"],
        chosen=mode,
        scores={} if s is None else {"sigma": s},
        reason=reason,
        parameters={
            "n_probes": cfg.n_probes,
            "probe_model": cfg.probe_model,
            "probe_temperature": cfg.probe_temperature,
            "extractor": cfg.extractor,
            "verification": cfg.verification,
            "ensemble": cfg.ensemble,
            "judge_model": cfg.judge_model,
        }
        | ({} if fixed is None else {"fixed_mode": fixed}),
        evidence=evidence
        | {"models_invoked": invoked, "final_answer": answer, "cost_usd": round(cost, 12)},
    )
    return ACARResult(
        answer=answer,
        sigma=assumed,
        mode=mode,
        probe_answers=probe_answers,
        models_invoked=invoked,
        cost_usd=cost,
    )
