"""ORCH: many analyses, one merge, with the EMA router choosing the panel (arXiv 2602.01797).

For a multiple-choice question (or a math question in the number variant):

1. **Panel.** The EMA router ranks the candidate agents by panel score
   (see :mod:`routers._ema`) on the state version named in the input, and takes the top k
   (k = 3); the top agent is dispatcher and merger. One Decision records it.
2. **Fixed decomposition.** The dispatcher splits the question into 3 short complementary
   sub-questions (concept, option elimination, verification). A reply that does not give three
   numbered sub-questions is replaced by the three fixed fallbacks, and the output says so.
3. **Analyses.** Panel agent i analyses sub-question i on the full question within 500
   characters (key points, then a tentative answer); analyses are truncated to the limit.
4. **Merge.** The merger gets the question and the analyses, each tagged with its agent, at
   temperature 0, and must output only the final option. :func:`parse_merge` reads it with a
   word-boundary match; unparseable gives ``?`` (counted wrong).

Feedback is a recorded step: :func:`observations` turns a finished answer and its gold label
into EMA observations, and :data:`~routers._ema.ema_feedback` applies them to make the next
state version.

*Our choices*: with k < 3 the panel analyses the first k sub-questions; with k > 3 the
sub-questions go round the panel; the analysts' calls are made at once (``ctx.gather``), and
recorded, listed and costed in panel order whichever answers first; a failed analyst call is
recorded as an unstable observation and its analysis left out. The judge of
:func:`judge_feedback` is asked about its distinct answers at once too, in their sorted order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from agents.models import ChatMessage, ChatRequest, ModelHub, ProviderError
from orch import Context, agent
from orch.errors import RecordedEffectError, type_path
from routers._ema import (
    EMAState,
    Observation,
    PanelExploration,
    explore_panel,
    observed,
    panel,
    panel_score,
)
from routers._extract import number, option_letter

__all__ = [
    "FALLBACK_SUBQUESTIONS",
    "Analysis",
    "JudgeFeedbackConfig",
    "JudgeFeedbackInput",
    "JudgedFeedback",
    "OrchConfig",
    "OrchMergeResult",
    "OrchQuestion",
    "judge_feedback",
    "observations",
    "orch_merge",
    "parse_merge",
    "parse_subquestions",
]

FALLBACK_SUBQUESTIONS = (
    "Which concept or fact does the question test, and what does it say?",
    "Which options can be eliminated, and why?",
    "Check the most likely option against the question: does it hold?",
)
UNPARSEABLE = "?"


class OrchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    agents: list[str] = Field(min_length=1)
    """Candidate models for the panel."""
    k: int = Field(default=3, ge=1)
    answer_format: Literal["letter", "number"] = "letter"
    letters: str = Field(default="ABCDEFGHIJ", pattern=r"^[A-Z]{2,26}$")
    """Allowed option letters (A-D or A-J in the paper)."""
    analysis_chars: int = Field(default=500, gt=0)
    max_tokens: int = Field(default=512, gt=0)
    explore: PanelExploration | None = None
    """Let the panel explore (:func:`routers._ema.explore_panel`); None: the plain top k."""

    @model_validator(mode="after")
    def _check(self) -> OrchConfig:
        dupes = sorted({a for a in self.agents if self.agents.count(a) > 1})
        if dupes:
            raise ValueError(f"panel candidates must be distinct, got duplicates {dupes}")
        return self

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The config hash is the hash of this dump: a config that does not explore must dump
        # as it did before ``explore`` existed, or every recorded ORCH spec hash would change.
        data: dict[str, Any] = handler(self)
        if self.explore is None:
            data.pop("explore", None)
        return data


class OrchQuestion(BaseModel):
    question: str = Field(min_length=1)
    state: str
    """The EMA state version (artifact key) that ranks the panel."""


class Analysis(BaseModel):
    agent: str
    subquestion: str
    text: str
    tentative: str | None
    ok: bool = True
    cost_usd: float = 0.0


class OrchMergeResult(BaseModel):
    answer: str
    """The final option (or number), ``?`` when the merge was unparseable."""
    panel: list[str]
    merger: str
    subquestions: list[str]
    decomposition: Literal["model", "fallback"]
    analyses: list[Analysis]
    merge_text: str
    merge_cost_usd: float
    cost_usd: float
    state_version: str


_PROVIDER_ERROR = type_path(ProviderError)


def _call_failure(exc: ProviderError | RecordedEffectError) -> str | None:
    """The message of a model call that failed for good, made live (a ProviderError) or
    served from the record (a replay raises the recorded failure again as a
    RecordedEffectError, with the text it had); None for another recorded failure."""
    if isinstance(exc, ProviderError):
        return str(exc)
    return exc.original_message if exc.original_type == _PROVIDER_ERROR else None


_NUMBERED = re.compile(r"^\s*(?:\d+[.):]|[-*•])\s*(.+?)\s*$")


def parse_subquestions(text: str) -> list[str] | None:
    """Three numbered (or bulleted) sub-questions, or None."""
    found = [m.group(1) for line in text.splitlines() if (m := _NUMBERED.match(line))]
    found = [q for q in found if len(q) >= 5]
    return found[:3] if len(found) >= 3 else None


def parse_merge(text: str, answer_format: str = "letter", letters: str = "ABCDEFGHIJ") -> str:
    """The merge agent's final option: a bare letter, ``\\boxed{X}`` or "answer is X", else the
    last stand-alone allowed capital letter; a number in the number variant; else ``?``."""
    if answer_format == "number":
        return number(text) or UNPARSEABLE
    found = option_letter(text)
    if found is not None and found.upper() in letters:
        return found.upper()
    alone = re.findall(rf"\b([{letters}])\b", text)
    return alone[-1] if alone else UNPARSEABLE


def _decompose_prompt(question: str) -> str:
    return (
        "Split the question below into exactly three short, complementary sub-questions, "
        "numbered 1 to 3: (1) the concept it tests, (2) which options can be eliminated, "
        f"(3) a verification of the most likely answer.\n\nQuestion:\n{question}"
    )


def _analysis_prompt(question: str, sub: str, limit: int, fmt: str) -> str:
    tentative = "a number" if fmt == "number" else "an option letter"
    return (
        f"Analyse this aspect of the question within {limit} characters: key points first, "
        f"then a tentative answer as {tentative}.\n\nAspect: {sub}\n\nQuestion:\n{question}"
    )


def _merge_prompt(question: str, analyses: list[Analysis], fmt: str, letters: str) -> str:
    tagged = "\n\n".join(f"[{a.agent}] {a.subquestion}\n{a.text}" for a in analyses)
    only = "the final number" if fmt == "number" else f"the final option letter ({letters})"
    return (
        f"Using the analyses below, answer the question. Output only {only}, nothing else."
        f"\n\nQuestion:\n{question}\n\nAnalyses:\n{tagged}"
    )


@agent(name="orch-merge", version="1", config=OrchConfig)
async def orch_merge(q: OrchQuestion, ctx: Context) -> OrchMergeResult:
    """Many analyses, one merge; see the module docstring."""
    cfg: OrchConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    state = ctx.load(q.state, EMAState)
    parameters: dict[str, Any] = {"k": cfg.k, "alpha": state.alpha, "agents": cfg.agents}
    evidence: dict[str, Any] = {
        "stats": {
            a: state.stats(a).model_dump(mode="json", exclude={"counts"})
            for a in sorted(cfg.agents)
        }
    }
    if cfg.explore is None:
        ranked = panel(state, cfg.agents, cfg.k)
        how, explored = "by EMA panel score", ""
    else:
        # The task is the question on this state version: a replay draws the same, and the
        # same question asked again on a newer state draws anew.
        choice = explore_panel(state, cfg.agents, cfg.k, cfg.explore, f"{q.state}\x00{q.question}")
        ranked = choice.members
        how = "by EMA panel score, exploring"
        explored = "".join(f"; {a} by exploration: {why}" for a, why in choice.explored.items())
        parameters["explore"] = cfg.explore.model_dump(mode="json")
        evidence["exploration"] = {
            "draw": choice.draw,
            "explored": choice.explored,
            "ranking": {a: round(s, 12) for a, s in choice.ranking.items()},
            "observations": {a: observed(state.stats(a)) for a in sorted(cfg.agents)},
        }
    members = [a for a, _ in ranked]
    merger = members[0]
    ctx.decide(
        candidates=sorted(cfg.agents),
        chosen=members,
        scores={a: round(panel_score(state.stats(a)), 12) for a in sorted(cfg.agents)},
        reason=(
            f"top {len(members)} {how}: "
            + ", ".join(f"{a} {s:+.3f}" for a, s in ranked)
            + f"; {merger} dispatches and merges"
            + explored
        ),
        parameters=parameters,
        state_version=q.state,
        evidence=evidence,
    )
    total = 0.0  # summed in call order, so its float never depends on which call ends first

    async def ask(model: str, prompt: str, temperature: float | None) -> tuple[str, float]:
        response = await hub.chat(
            ctx,
            ChatRequest(
                model=model,
                messages=[ChatMessage(role="user", content=prompt)],
                temperature=temperature,
                max_tokens=cfg.max_tokens,
            ),
        )
        return response.text, hub.registry.model(model).cost(response.usage)

    decomposition: Literal["model", "fallback"] = "model"
    try:
        text, cost = await ask(merger, _decompose_prompt(q.question), None)
        total += cost
        subs = parse_subquestions(text)
    except (ProviderError, RecordedEffectError) as exc:
        if _call_failure(exc) is None:
            raise
        subs = None
    if subs is None:
        subs, decomposition = list(FALLBACK_SUBQUESTIONS), "fallback"

    async def analyse(member: str, sub: str) -> Analysis:
        prompt = _analysis_prompt(q.question, sub, cfg.analysis_chars, cfg.answer_format)
        try:
            text, cost = await ask(member, prompt, None)
        except (ProviderError, RecordedEffectError) as exc:
            failure = _call_failure(exc)
            if failure is None:
                raise
            return Analysis(
                agent=member, subquestion=sub, text=failure[:200], tentative=None, ok=False
            )
        text = text[: cfg.analysis_chars]
        return Analysis(
            agent=member,
            subquestion=sub,
            text=text,
            tentative=parse_merge(text, cfg.answer_format, cfg.letters),
            cost_usd=cost,
        )

    analyses = await ctx.gather(
        *(analyse(members[i % len(members)], subs[i % 3]) for i in range(len(members)))
    )
    usable = [a for a in analyses if a.ok]
    for a in usable:
        total += a.cost_usd
    merge_text, merge_cost = await ask(
        merger, _merge_prompt(q.question, usable, cfg.answer_format, cfg.letters), 0.0
    )
    total += merge_cost
    return OrchMergeResult(
        answer=parse_merge(merge_text, cfg.answer_format, cfg.letters),
        panel=members,
        merger=merger,
        subquestions=subs,
        decomposition=decomposition,
        analyses=analyses,
        merge_text=merge_text[:2000],
        merge_cost_usd=merge_cost,
        cost_usd=total,
        state_version=q.state,
    )


def observations(
    result: OrchMergeResult,
    gold: str | None,
    *,
    latency_ms: Mapping[str, float] | None = None,
    delayed: bool = False,
) -> list[Observation]:
    """EMA feedback from one answered question: one observation per analyst call (quality:
    its tentative answer was right) and one for the merge (quality: the final answer was
    right). ``latency_ms`` per agent (unknown: not updated) comes from the run's recorded
    effects (the event log), never from a clock here; missing gold is an error unless
    ``delayed`` (quality unknown)."""
    if gold is None and not delayed:
        raise ValueError(
            "EMA feedback needs the gold answer for quality; fix: pass gold=..., or "
            "delayed=True to record latency, cost and stability now and quality later"
        )
    lat = dict(latency_ms or {})
    bad = {a: v for a, v in lat.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"latencies must be finite and >= 0 ms, got {bad}")

    def quality(answer: str | None) -> float | None:
        if gold is None:
            return None
        return 1.0 if answer is not None and answer == gold else 0.0

    out = [
        Observation(
            agent=a.agent,
            ok=a.ok,
            latency_ms=lat.get(a.agent),
            cost_usd=a.cost_usd,
            quality=quality(a.tentative) if a.ok else 0.0 if gold is not None else None,
        )
        for a in result.analyses
    ]
    out.append(
        Observation(
            agent=result.merger,
            ok=True,
            latency_ms=lat.get(result.merger),
            cost_usd=result.merge_cost_usd,
            quality=quality(result.answer if result.answer != UNPARSEABLE else None),
        )
    )
    return out


class JudgeFeedbackConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    judge_model: str = Field(min_length=1)


class JudgeFeedbackInput(BaseModel):
    question: str
    result: OrchMergeResult


class JudgedFeedback(BaseModel):
    observations: list[Observation]


_YES = re.compile(r"\b(yes|correct)\b", re.I)
_NO = re.compile(r"\b(no|incorrect|wrong)\b", re.I)


@agent(name="orch-judge-feedback", version="1", config=JudgeFeedbackConfig)
async def judge_feedback(inp: JudgeFeedbackInput, ctx: Context) -> JudgedFeedback:
    """Quality feedback without gold labels: a judge model says whether the final answer and
    each tentative answer are right (one recorded call per distinct answer). The output is
    quality-only observations, for :data:`~routers._ema.ema_feedback` to apply; an
    unreadable verdict gives no quality rather than a guess."""
    cfg: JudgeFeedbackConfig = ctx.config
    hub: ModelHub = ctx.service("models")
    verdicts: dict[str, float | None] = {}
    given = [a.tentative for a in inp.result.analyses] + [inp.result.answer]
    answers = sorted({a for a in given if a is not None and a != UNPARSEABLE})
    replies = await ctx.gather(
        *(
            hub.chat(
                ctx,
                ChatRequest(
                    model=cfg.judge_model,
                    messages=[
                        ChatMessage(
                            role="user",
                            content=(
                                f"Is {answer} the correct answer to the question below? Reply "
                                f"'yes' or 'no' only.\n\nQuestion:\n{inp.question}"
                            ),
                        )
                    ],
                    temperature=0.0,
                    max_tokens=8,
                ),
            )
            for answer in answers
        )
    )
    for answer, reply in zip(answers, replies, strict=True):
        yes, no = bool(_YES.search(reply.text)), bool(_NO.search(reply.text))
        verdicts[answer] = 1.0 if yes and not no else 0.0 if no and not yes else None

    def quality(answer: str | None) -> float | None:
        if answer is None or answer == UNPARSEABLE:
            return 0.0
        return verdicts.get(answer)

    out = [Observation(agent=a.agent, quality=quality(a.tentative)) for a in inp.result.analyses]
    out.append(Observation(agent=inp.result.merger, quality=quality(inp.result.answer)))
    ctx.decide(
        candidates=sorted(verdicts) or [UNPARSEABLE],
        chosen=[a for a, v in sorted(verdicts.items()) if v == 1.0],
        reason=f"judge {cfg.judge_model} on the answers given: "
        + (
            ", ".join(
                f"{a} {'right' if v == 1.0 else 'wrong' if v == 0.0 else 'unclear'}"
                for a, v in sorted(verdicts.items())
            )
            or "no readable answer"
        ),
        parameters={"judge_model": cfg.judge_model},
        evidence={"verdicts": verdicts},
    )
    return JudgedFeedback(observations=out)
