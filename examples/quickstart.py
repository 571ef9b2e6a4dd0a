"""Quickstart: a three-model ensemble over 30 recorded MMLU-Pro questions, offline.

Two models answer from real recorded responses (claude-3-haiku and gemini-2.0-flash, from the
Apache-2.0 RouterArena data in ``examples/data/``); a third is a seeded simulated model. Every
model call is a recorded effect with tokens and cost, so a run can be replayed and audited:

    question ─┬─> haiku  ─┐
              ├─> gemini ─┼─> vote ──(agree)──────────────────┐
              └─> sim    ─┘     └──(disagree)──> judge ───────┴─> merge -> answer

``vote`` routes on agreement: σ = (distinct answers - 1) / (models - 1). Unanimous answers
skip the judge (recorded as skipped, with the reason); any disagreement escalates to a judge
that weighs each model's answer by its prior reliability. Both record a Decision with their
evidence. Run it::

    python examples/quickstart.py        # all 30 questions, prints accuracy and cost
    orch show <run id>   /   orch verify <run id>   /   orch replay <run id>
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import orch
from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry
from orch import Context, PipelineBuilder, Selection, agent

DATA = Path(__file__).parent / "data" / "routerarena_mmlupro_30.json"

# The registry: recorded models at their providers' prices (USD per million tokens, from
# RouterArena's cost table) and a simulated model for a third opinion.
REGISTRY: dict[str, Any] = {
    "providers": {
        "recorded": {"kind": "recorded", "options": {"data": str(DATA)}},
        "simulated": {"kind": "simulated", "options": {"data": str(DATA), "skill": 0.5}},
    },
    "models": {
        "haiku": {
            "provider": "recorded",
            "name": "claude-3-haiku-20240307",
            "input_per_mtok": 0.25,
            "output_per_mtok": 1.25,
        },
        "gemini": {
            "provider": "recorded",
            "name": "gemini-2.0-flash-001",
            "input_per_mtok": 0.1,
            "output_per_mtok": 0.4,
        },
        "sim": {
            "provider": "simulated",
            "name": "sim-small",
            "input_per_mtok": 0.05,
            "output_per_mtok": 0.1,
        },
    },
}
MODELS = ("haiku", "gemini", "sim")
# Prior reliability per model for the judge: RouterArena's mean scores on its sub_10 split
# (0.52 and 0.69); the simulated model is right half the time by construction.
RELIABILITY = {"haiku": 0.52, "gemini": 0.69, "sim": 0.5}


def services() -> dict[str, Any]:
    """What this pipeline's agents reach through ``ctx.service`` (the CLI calls this)."""
    return {"models": ModelHub(ModelRegistry.from_dict(REGISTRY))}


class Question(BaseModel):
    question: str


class ModelChoice(BaseModel):
    model: str


class ModelAnswer(BaseModel):
    model: str
    answer: str
    """The option letter the model chose, or '?' when none could be read."""


class Ballot(BaseModel):
    answers: list[ModelAnswer]


class Vote(Selection):
    majority: str
    sigma: float


class Verdict(BaseModel):
    answer: str
    reason: str


class MergeInput(BaseModel):
    vote: Vote
    verdict: Verdict | None = None


class FinalAnswer(BaseModel):
    answer: str
    route: str
    sigma: float


_BOXED = re.compile(r"\\boxed\{\s*([A-J])\s*\}")
_STATED = re.compile(r"answer is \(?([A-J])\)?\b")


def option_letter(text: str) -> str:
    """The last ``\\boxed{X}`` (or "the answer is X") in a model's text, else '?'."""
    found = _BOXED.findall(text) or _STATED.findall(text)
    return found[-1] if found else "?"


@agent(name="mcq-model", version="1", config=ModelChoice)
async def ask_model(q: Question, ctx: Context) -> ModelAnswer:
    """Ask one model the question (a recorded effect) and read its option letter."""
    hub: ModelHub = ctx.service("models")
    model = ctx.config.model
    request = ChatRequest(
        model=model, messages=[ChatMessage(role="user", content=q.question)], max_tokens=512
    )
    response = await hub.chat(ctx, request)
    return ModelAnswer(model=model, answer=option_letter(response.text))


@agent(name="agreement-router", version="1")
async def vote(ballot: Ballot, ctx: Context) -> Vote:
    """Route on agreement: unanimous answers need no judge; any disagreement escalates."""
    counts = Counter(a.answer for a in ballot.answers)
    n = len(ballot.answers)
    sigma = (len(counts) - 1) / (n - 1) if n > 1 else 0.0
    # Ties broken by the letter so the choice never depends on arrival order.
    majority = max(sorted(counts), key=lambda a: counts[a])
    branch = "agree" if sigma == 0 else "disagree"
    ctx.decide(
        candidates=["agree", "disagree"],
        chosen=branch,
        scores={"sigma": sigma, "votes": dict(sorted(counts.items()))},
        reason=(
            f"all {n} models answered {majority}"
            if branch == "agree"
            else f"{len(counts)} distinct answers (σ={sigma:.2f}); escalating to the judge"
        ),
        parameters={"n_models": n},
        evidence={"answers": {a.model: a.answer for a in ballot.answers}},
    )
    return Vote(branches=[branch], majority=majority, sigma=sigma, reason=branch)


@agent(name="reliability-judge", version="1")
async def judge(ballot: Ballot, ctx: Context) -> Verdict:
    """Pick the answer with the most reliability-weighted support ('?' never wins)."""
    weight: dict[str, float] = {}
    for a in ballot.answers:
        if a.answer != "?":
            weight[a.answer] = weight.get(a.answer, 0.0) + RELIABILITY[a.model]
    if not weight:
        return Verdict(answer="?", reason="no model gave a readable answer")
    ranked = sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))
    best = ranked[0][0]
    reason = f"{best} has the most reliability-weighted support ({ranked[0][1]:.2f})"
    ctx.decide(
        candidates=[a for a, _ in ranked],
        chosen=best,
        scores={a: round(w, 3) for a, w in ranked},
        reason=reason,
        parameters={"reliability": RELIABILITY},
    )
    return Verdict(answer=best, reason=reason)


@agent(name="merge", version="1")
async def merge(m: MergeInput, ctx: Context) -> FinalAnswer:
    """The judge's verdict when there was one, else the unanimous answer."""
    if m.verdict is not None:
        return FinalAnswer(answer=m.verdict.answer, route="judge", sigma=m.vote.sigma)
    return FinalAnswer(answer=m.vote.majority, route="agree", sigma=m.vote.sigma)


def build() -> orch.Pipeline:
    p = PipelineBuilder("quickstart-ensemble")
    question = p.input("question", str)
    answers = [
        p.node(name, ask_model.with_config(model=name), question=question) for name in MODELS
    ]
    router = p.node("vote", vote, answers=answers)
    verdict = p.node("judge", judge, answers=answers, when=router.selects("disagree"))
    final = p.node("merge", merge, vote=router, verdict=verdict)
    p.output("answer", final)
    return p.build()


pipeline = build()


def items() -> list[dict[str, Any]]:
    return list(json.loads(DATA.read_text())["items"])


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from traces import EffectRecord, StepRecord, open_store

    console = Console()
    table = Table(title="orch quickstart: 2 recorded models + 1 simulated, σ-router, judge")
    for col in ("item", "gold", *MODELS, "ensemble", "route", "σ", "cost $"):
        table.add_column(col)
    correct = Counter[str]()
    total_cost = 0.0
    data = items()
    with open_store() as store:
        for item in data:
            result = orch.run(
                pipeline,
                {"question": item["question"]},
                store=store,
                seed=7,
                services=services(),
                # Lets `orch replay RUN` find this file again.
                origin={"pipeline": f"{Path(__file__).resolve()}:pipeline"},
            )
            result.raise_for_status()
            final: FinalAnswer = result.outputs["answer"]
            picks = {m: result.steps[m].output.answer for m in MODELS}  # type: ignore[union-attr]
            cost = sum(
                EffectRecord.model_validate(store.get_value(k)).cost_usd or 0.0
                for _, key in result.record.steps
                for k in StepRecord.model_validate(store.get_value(key)).effects
            )
            total_cost += cost
            gold = item["answer"]
            for m in MODELS:
                correct[m] += picks[m] == gold
            correct["ensemble"] += final.answer == gold
            table.add_row(
                item["id"].removeprefix("MMLUPro_"),
                gold,
                *(picks[m] + (" ✓" if picks[m] == gold else "") for m in MODELS),
                final.answer + (" ✓" if final.answer == gold else ""),
                final.route,
                f"{final.sigma:.2f}",
                f"{cost:.6f}",
            )
        console.print(table)
        n = len(data)
        console.print(
            "accuracy: "
            + ", ".join(f"{m} {correct[m]}/{n}" for m in (*MODELS, "ensemble"))
            + f"; total cost ${total_cost:.4f}"
        )
        console.print(f"records written to {store.location}")
        console.print(f"inspect:  orch show {result.run_id}")
        console.print(f"verify:   orch verify {result.run_id}")
        console.print(f"replay:   orch replay {result.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
