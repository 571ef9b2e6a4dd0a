"""Quickstart: a three-model ensemble with an agreement router, a judge and a merge.

Runs offline with no API keys: the "models" are scripted, deterministic agents (the real
OpenAI/Anthropic providers plug in at the same place). The pipeline:

    question ─┬─> alpha ─┐
              ├─> beta  ─┼─> vote ──(agree)──────────────┐
              └─> gamma ─┘     └──(disagree)──> judge ───┴─> merge -> answer

``vote`` is a router: when the three answers agree it selects the ``agree`` branch and the
judge is recorded as skipped; when they disagree it escalates to the judge. Both record a
Decision with their evidence. Run it::

    python examples/quickstart.py                # four questions, prints a summary
    orch run examples/quickstart.py -i question="What is 17 * 3?"
    orch show <run id>   /   orch verify <run id>
"""

from __future__ import annotations

import sys
from collections import Counter

from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, Selection, agent

# Scripted answers per model: what three differently-skilled models might say.
SCRIPTS: dict[str, dict[str, str]] = {
    "alpha": {
        "What is 17 * 3?": "51",
        "Which planet is known as the Red Planet?": "Mars",
        "How many sides has a hexagon?": "6",
        "What is the capital of Australia?": "Canberra",
    },
    "beta": {
        "What is 17 * 3?": "51",
        "Which planet is known as the Red Planet?": "Mars",
        "How many sides has a hexagon?": "8",
        "What is the capital of Australia?": "Sydney",
    },
    "gamma": {
        "What is 17 * 3?": "51",
        "Which planet is known as the Red Planet?": "Mars",
        "How many sides has a hexagon?": "6",
        "What is the capital of Australia?": "Melbourne",
    },
}
QUESTIONS = list(SCRIPTS["alpha"])


class Question(BaseModel):
    question: str


class ModelAnswer(BaseModel):
    model: str
    answer: str
    confidence: float


class ModelConfig(BaseModel):
    model: str
    skill: float
    """Base confidence of this scripted model."""


class Ballot(BaseModel):
    question: str
    answers: list[ModelAnswer]


class Vote(Selection):
    majority: str
    support: int
    sigma: float
    """Disagreement: (distinct answers - 1) / (n - 1)."""


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


@agent(name="scripted-model", version="1", config=ModelConfig)
async def scripted_model(q: Question, ctx: Context) -> ModelAnswer:
    """A deterministic stand-in for an LLM: a scripted answer, a seeded confidence."""
    cfg: ModelConfig = ctx.config
    script = SCRIPTS.get(cfg.model, {})
    answer = script.get(q.question)
    if answer is None:  # unscripted question: a seeded guess, so runs stay reproducible
        answer = ctx.rng.choice(["I don't know", "42", "yes", "no"])
    confidence = round(min(1.0, cfg.skill + ctx.rng.uniform(-0.1, 0.1)), 3)
    return ModelAnswer(model=cfg.model, answer=answer, confidence=confidence)


@agent(name="agreement-router", version="1")
async def vote(ballot: Ballot, ctx: Context) -> Vote:
    """Route on agreement: unanimous answers need no judge; any disagreement escalates."""
    counts = Counter(a.answer for a in ballot.answers)
    n = len(ballot.answers)
    sigma = (len(counts) - 1) / (n - 1) if n > 1 else 0.0
    # Ties broken by the answer text so the choice never depends on arrival order.
    majority, support = max(sorted(counts.items()), key=lambda kv: kv[1])
    branch = "agree" if sigma == 0 else "disagree"
    ctx.decide(
        candidates=["agree", "disagree"],
        chosen=branch,
        scores={"sigma": sigma, "votes": dict(sorted(counts.items()))},
        reason=(
            f"all {n} models answered {majority!r}"
            if branch == "agree"
            else f"{len(counts)} distinct answers (σ={sigma:.2f}); escalating to the judge"
        ),
        parameters={"n_models": n},
    )
    return Vote(branches=[branch], majority=majority, support=support, sigma=sigma, reason=branch)


@agent(name="confidence-judge", version="1")
async def judge(ballot: Ballot, ctx: Context) -> Verdict:
    """Pick the answer with the most confidence-weighted support."""
    weight: dict[str, float] = {}
    for a in ballot.answers:
        weight[a.answer] = weight.get(a.answer, 0.0) + a.confidence
    ranked = sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))
    best = ranked[0][0]
    reason = f"{best!r} has the highest confidence-weighted support ({ranked[0][1]:.2f})"
    ctx.decide(
        candidates=[a for a, _ in ranked],
        chosen=best,
        scores={a: round(w, 3) for a, w in ranked},
        reason=reason,
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
    models = [
        p.node(name, scripted_model.with_config(model=name, skill=skill), question=question)
        for name, skill in (("alpha", 0.9), ("beta", 0.6), ("gamma", 0.75))
    ]
    router = p.node("vote", vote, question=question, answers=models)
    verdict = p.node(
        "judge", judge, question=question, answers=models, when=router.selects("disagree")
    )
    final = p.node("merge", merge, vote=router, verdict=verdict)
    p.output("answer", final)
    return p.build()


pipeline = build()


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    from traces.open import open_store

    console = Console()
    table = Table(title="orch quickstart: three scripted models, an agreement router, a judge")
    for col in ("question", "answer", "route", "σ", "run id", "root hash"):
        table.add_column(col)
    with open_store() as store:
        for question in QUESTIONS:
            result = orch.run(pipeline, {"question": question}, store=store, seed=7)
            result.raise_for_status()
            final: FinalAnswer = result.outputs["answer"]
            table.add_row(
                question,
                final.answer,
                final.route,
                f"{final.sigma:.2f}",
                result.run_id,
                result.root_hash[:23] + "…",
            )
        console.print(table)
        console.print(f"records written to {store.location}")
        console.print(f"inspect:  orch show {result.run_id}")
        console.print(f"verify:   orch verify {result.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
