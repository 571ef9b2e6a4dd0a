"""TCAR: the reasoning router over an agent registry (TCAndon-Router, arXiv 2601.04544).

Agents are described by id, name and description; the
:class:`~routers._tcar_registry.AgentRegistry` holds them and onboarding is adding or removing
a description at run time (no retraining). The registry's version, a hash of its
descriptions, goes into every decision.

A router model gets the agent list, the instruction to reason first and then choose at most
``max_agents`` (3) agents or ``oos``, and the query (with chat history). Its reply must follow
the **contract**::

    <Reason>why these agents</Reason>
    <ID>agent_id</ID>            (one line per chosen agent, or a single <ID>oos</ID>)

:func:`parse_route` reads it; unknown ids and malformed output are recorded, retried once with
a repair request, then handed to the fallback router. With no router model, the offline
:class:`~routers._tcar_lexical.LexicalRouter` writes a reply in the same contract (its evidence
as the reason), which goes through the same parser.

*Our choices*: agents are listed sorted by id (so the prompt never depends on onboarding
order); a reply with ``oos`` next to real ids is malformed; duplicate ids collapse; the
default fallback is the offline lexical router.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.models import ChatMessage, ChatRequest, ModelHub
from orch import Context, agent
from routers._tcar_lexical import LexicalRouter
from routers._tcar_registry import OOS, AgentCard, AgentRegistry

__all__ = [
    "ParsedRoute",
    "TCARConfig",
    "TCARQuery",
    "TCARRoute",
    "parse_route",
    "repair_prompt",
    "router_prompt",
    "tcar_router",
]


def router_prompt(
    cards: list[AgentCard], query: str, history: list[ChatMessage], max_agents: int
) -> str:
    """The router instruction: agent list, the contract, the (multi-turn) query."""
    listed = "\n".join(
        f"- id: {c.id}\n  name: {c.name}\n  description: {c.description}" for c in cards
    )
    turns = "".join(f"{m.role}: {m.content}\n" for m in history)
    return (
        "You route user queries to the agents that can answer them.\n\n"
        f"Agents:\n{listed}\n\n"
        "First reason about what the user needs and which agents fit, inside "
        "<Reason>...</Reason>. Then name the chosen agents, one <ID>agent_id</ID> per line, "
        f"at most {max_agents}. If no agent fits, answer <ID>{OOS}</ID>.\n\n"
        + (f"Conversation so far:\n{turns}\n" if turns else "")
        + f"Query: {query}"
    )


def repair_prompt(errors: list[str], ids: list[str], max_agents: int) -> str:
    return (
        "Your reply could not be used: " + "; ".join(errors) + ". Reply again in exactly this "
        "form: <Reason>your reasoning</Reason> then one <ID>agent_id</ID> line per chosen "
        f"agent (at most {max_agents}, ids from: {', '.join(ids)}), or <ID>{OOS}</ID>."
    )


@dataclass
class ParsedRoute:
    """What a router reply said: the ids (``[OOS]`` for out of scope), the reason, and the
    contract violations (empty when the reply is usable)."""

    ids: list[str]
    reason: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


_REASON = re.compile(r"<reason>(.*?)</reason>", re.I | re.S)
_IDS = re.compile(r"<id>(.*?)</id>", re.I | re.S)


def parse_route(text: str, known: Iterable[str], max_agents: int = 3) -> ParsedRoute:
    """Read a router reply against the contract; see the module docstring."""
    known_set = set(known)
    errors: list[str] = []
    reasons = _REASON.findall(text)
    reason = reasons[0].strip() if reasons else ""
    if not reasons:
        errors.append("no <Reason>...</Reason> block")
    raw = [m.strip() for m in _IDS.findall(text)]
    ids = list(dict.fromkeys(OOS if r.lower() == OOS else r for r in raw))
    if not raw:
        errors.append("no <ID>...</ID> tag")
    if OOS in ids and len(ids) > 1:
        errors.append(f"'{OOS}' given together with agent ids {[i for i in ids if i != OOS]}")
    unknown = [i for i in ids if i != OOS and i not in known_set]
    if unknown:
        errors.append(f"unknown agent ids {unknown}")
    if len([i for i in ids if i != OOS]) > max_agents:
        errors.append(f"{len(ids)} agents chosen, at most {max_agents} allowed")
    return ParsedRoute(ids=ids, reason=reason, errors=errors)


class TCARConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    router_model: str | None = None
    """Any chat model; None routes offline with the lexical router."""
    max_agents: int = Field(default=3, ge=1)
    repair: bool = True
    """Retry once with a repair request when the reply breaks the contract."""
    fallback: Literal["lexical", "oos", "fail"] = "lexical"
    """What routes when the router model's replies cannot be used."""
    lexical_k: int = Field(default=10, ge=1)
    lexical_min_similarity: float = Field(default=0.2, ge=0, le=1, allow_inf_nan=False)
    lexical_ratio: float = Field(default=0.8, gt=0, le=1, allow_inf_nan=False)
    max_tokens: int = Field(default=512, gt=0)


class TCARQuery(BaseModel):
    query: str = Field(min_length=1)
    history: list[ChatMessage] = Field(default_factory=list)


class TCARRoute(BaseModel):
    chosen: list[str]
    """Agent ids, or ``["oos"]``."""
    reason: str
    via: Literal["router", "repair", "offline", "fallback"]
    registry_version: str


def _lexical_text(query: TCARQuery) -> str:
    # Our choice: in a multi-turn chat the offline router also reads the previous user turn,
    # so "and for my card?" after "block my account" still finds banking.
    previous = [m.content for m in query.history if m.role == "user"][-1:]
    return " ".join([*previous, query.query])


@agent(name="tcar-router", version="1", config=TCARConfig)
async def tcar_router(query: TCARQuery, ctx: Context) -> TCARRoute:
    """Choose agents for ``query``; see the module docstring."""
    cfg: TCARConfig = ctx.config
    registry: AgentRegistry = ctx.service("agents")
    cards = registry.snapshot()
    ids = [c.id for c in cards]
    version = registry.version
    attempts: list[dict[str, Any]] = []
    lexical = LexicalRouter.for_cards(
        cards, k=cfg.lexical_k, min_similarity=cfg.lexical_min_similarity, ratio=cfg.lexical_ratio
    )
    scores: dict[str, float] = {}
    parsed: ParsedRoute | None = None
    via: Literal["router", "repair", "offline", "fallback"]

    if cfg.router_model is None:
        via = "offline"
        text, scores, lexical_evidence = lexical.reply(_lexical_text(query), cfg.max_agents)
        parsed = parse_route(text, ids, cfg.max_agents)
        attempts.append({"by": "lexical", "reply": text, "errors": parsed.errors})
    else:
        hub: ModelHub = ctx.service("models")
        messages = [
            ChatMessage(
                role="user",
                content=router_prompt(cards, query.query, query.history, cfg.max_agents),
            )
        ]
        via = "router"
        for attempt in range(2 if cfg.repair else 1):
            reply = await hub.chat(
                ctx,
                ChatRequest(
                    model=cfg.router_model,
                    messages=messages,
                    temperature=0.0,
                    max_tokens=cfg.max_tokens,
                ),
            )
            parsed = parse_route(reply.text, ids, cfg.max_agents)
            attempts.append(
                {"by": cfg.router_model, "reply": reply.text[:2000], "errors": parsed.errors}
            )
            if parsed.ok:
                via = "router" if attempt == 0 else "repair"
                break
            messages = [
                *messages,
                ChatMessage(role="assistant", content=reply.text),
                ChatMessage(role="user", content=repair_prompt(parsed.errors, ids, cfg.max_agents)),
            ]
        assert parsed is not None
        lexical_evidence = {}
        if not parsed.ok:
            via = "fallback"
            if cfg.fallback == "fail":
                raise ValueError(
                    f"router model {cfg.router_model!r} broke the output contract "
                    f"({'; '.join(parsed.errors)}) and the fallback is 'fail'; fix: choose "
                    "fallback 'lexical' or 'oos', or a model that follows the contract"
                )
            if cfg.fallback == "oos":
                parsed = ParsedRoute(
                    ids=[OOS], reason="the router's replies broke the contract; fallback: oos"
                )
            else:
                text, scores, lexical_evidence = lexical.reply(_lexical_text(query), cfg.max_agents)
                parsed = parse_route(text, ids, cfg.max_agents)
                attempts.append({"by": "lexical", "reply": text, "errors": parsed.errors})
    if not parsed.ok:  # only the offline router can get here, and it meets the contract
        raise AssertionError(f"offline router broke the contract: {parsed.errors}")
    ctx.decide(
        candidates=[*ids, OOS],
        chosen=parsed.ids,
        reason=parsed.reason,
        scores=scores,
        parameters={
            "router_model": cfg.router_model,
            "max_agents": cfg.max_agents,
            "repair": cfg.repair,
            "fallback": cfg.fallback,
            "lexical_k": cfg.lexical_k,
            "lexical_min_similarity": cfg.lexical_min_similarity,
            "lexical_ratio": cfg.lexical_ratio,
        },
        evidence={
            "registry_version": version,
            "registry": [c.model_dump(mode="json", exclude={"examples"}) for c in cards],
            "attempts": attempts,
            "via": via,
            **({"lexical": lexical_evidence} if lexical_evidence else {}),
        },
    )
    return TCARRoute(chosen=parsed.ids, reason=parsed.reason, via=via, registry_version=version)
