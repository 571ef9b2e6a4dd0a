"""The TCAR refining agent: many agents' answers in, one answer out.

The paper's rules: combine complementary answers, state conflicts explicitly when answers
disagree, politely decline when no answer is useful, and output only the final answer. With a
``model`` configured, a chat model does the merge under those rules; without one, the offline
refiner applies them mechanically:

* no useful answer (failed, declined or empty) → a polite decline naming who was consulted;
* one useful answer → that answer;
* several with canonical short answers (``AgentReply.answer``): all equal → integrated, they
  agree; different → a conflict statement giving each agent's answer;
* several free-text answers → integrated as complementary parts, each with its agent.

*Our choice*: a decline never calls the model (there is nothing to merge). The refiner
records one Decision: which agents' answers it used, and why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.models import ChatMessage, ChatRequest, ModelHub
from orch import Context, agent

__all__ = ["AgentAnswer", "AgentReply", "RefineInput", "RefinedAnswer", "RefinerConfig", "refiner"]


class AgentReply(BaseModel):
    """What an agent chosen by TCAR returns."""

    text: str
    answer: str | None = None
    """A canonical short answer (a label, a letter, a number) when the agent has one."""
    declined: bool = False
    """The agent says the query is not for it."""


class AgentAnswer(BaseModel):
    agent: str
    reply: AgentReply | None = None
    error: str | None = None
    """Why there is no reply (the agent's step failed)."""

    @property
    def useful(self) -> bool:
        return self.reply is not None and not self.reply.declined and bool(self.reply.text.strip())


class RefineInput(BaseModel):
    query: str
    answers: list[AgentAnswer]


class RefinedAnswer(BaseModel):
    text: str
    kind: Literal["single", "integrated", "conflict", "declined", "model"]
    sources: list[str]
    """The agents whose answers went into the final one."""


class RefinerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str | None = None
    max_tokens: int = Field(default=512, gt=0)


def refine_prompt(query: str, useful: list[AgentAnswer]) -> str:
    tagged = "\n\n".join(f"[{a.agent}]\n{a.reply.text}" for a in useful if a.reply)
    return (
        "Several specialist agents answered the user's query. Write the single final answer. "
        "If their answers complement each other, combine them. If they conflict, say so "
        "plainly and give each position. If none is useful, politely decline. Output only the "
        f"final answer.\n\nQuery: {query}\n\nAnswers:\n{tagged}"
    )


def offline_refine(query: str, answers: list[AgentAnswer]) -> tuple[RefinedAnswer, str]:
    """The rule-based merge and the reason for it."""
    useful = [a for a in answers if a.useful]
    consulted = ", ".join(a.agent for a in answers) or "no agent"
    if not useful:
        return (
            RefinedAnswer(
                text=f"Sorry, I can't help with that: none of the agents consulted "
                f"({consulted}) had a useful answer.",
                kind="declined",
                sources=[],
            ),
            f"no useful answer among {consulted}: decline",
        )
    names = [a.agent for a in useful]
    if len(useful) == 1:
        only = useful[0]
        assert only.reply is not None
        return (
            RefinedAnswer(text=only.reply.text, kind="single", sources=names),
            f"only {only.agent} gave a useful answer",
        )
    replies = [a.reply for a in useful if a.reply is not None]
    canon = [r.answer for r in replies]
    if all(c is not None for c in canon):
        if len(set(canon)) == 1:
            return (
                RefinedAnswer(
                    text=f"{replies[0].text} (agreed by {', '.join(names)})",
                    kind="integrated",
                    sources=names,
                ),
                f"{', '.join(names)} agree on {canon[0]!r}",
            )
        positions = "; ".join(f"{a.agent} says {a.reply.answer}" for a in useful if a.reply)
        return (
            RefinedAnswer(
                text=f"The specialists disagree: {positions}. Please say which one you meant.",
                kind="conflict",
                sources=names,
            ),
            f"conflicting answers: {positions}",
        )
    parts = "\n".join(f"- {a.agent}: {a.reply.text}" for a in useful if a.reply)
    return (
        RefinedAnswer(text=parts, kind="integrated", sources=names),
        f"free-text answers from {', '.join(names)} combined as complementary parts",
    )


@agent(name="tcar-refiner", version="1", config=RefinerConfig)
async def refiner(inp: RefineInput, ctx: Context) -> RefinedAnswer:
    """Merge the chosen agents' answers; see the module docstring."""
    cfg: RefinerConfig = ctx.config
    merged, reason = offline_refine(inp.query, inp.answers)
    if cfg.model is not None and merged.kind != "declined":
        hub: ModelHub = ctx.service("models")
        useful = [a for a in inp.answers if a.useful]
        response = await hub.chat(
            ctx,
            ChatRequest(
                model=cfg.model,
                messages=[ChatMessage(role="user", content=refine_prompt(inp.query, useful))],
                temperature=0.0,
                max_tokens=cfg.max_tokens,
            ),
        )
        merged = RefinedAnswer(text=response.text.strip(), kind="model", sources=merged.sources)
        reason = f"{cfg.model} merged the answers of {', '.join(merged.sources)}"
    ctx.decide(
        candidates=[a.agent for a in inp.answers],
        chosen=merged.sources,
        reason=reason,
        parameters={"model": cfg.model},
        evidence={
            "kind": merged.kind,
            "answers": [
                {
                    "agent": a.agent,
                    "useful": a.useful,
                    "answer": a.reply.answer if a.reply else None,
                    "declined": a.reply.declined if a.reply else None,
                    "error": a.error,
                }
                for a in inp.answers
            ],
        },
    )
    return merged
