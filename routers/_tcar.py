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
:class:`~routers._tcar_trained.TrainedRouter`, a classifier trained on the agents' cards,
writes a reply in the same contract (its probabilities as the reason), which goes through the
same parser. Its state is router state: ``router_state`` names a trained version in the run's
store, adapted at once to agents onboarded or removed since; without one, the router trains on
the registry's cards (once per registry version and process) and stores the state. Either
way the decision names the version that routed (``state_version``).

*Our choices*: agents are listed sorted by id (so the prompt never depends on onboarding
order); a reply with ``oos`` next to real ids is malformed; duplicate ids collapse; the
default fallback is the offline trained router.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.models import ChatMessage, ChatRequest, ModelHub
from orch import Context, agent
from routers._classifier import IntentClassifier, TrainConfig
from routers._served import checked_state
from routers._tcar_registry import OOS, AgentCard, AgentRegistry
from routers._tcar_trained import TrainedRouter, state_for_cards, train_tcar
from traces import hash_value

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
    """Any chat model; None routes offline with the trained router."""
    max_agents: int = Field(default=3, ge=1)
    repair: bool = True
    """Retry once with a repair request when the reply breaks the contract."""
    fallback: Literal["offline", "oos", "fail"] = "offline"
    """What routes when the router model's replies cannot be used ("lexical", the name of
    the offline router before it was trained, means "offline")."""
    router_state: str | None = None
    """A trained offline router's version in the run's store (from :func:`train_tcar` and
    ``save_state``); None trains one on the registry's cards."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """How the offline router is trained when ``router_state`` is None."""
    max_tokens: int = Field(default=512, gt=0)

    @field_validator("fallback", mode="before")
    @classmethod
    def _old_name(cls, value: Any) -> Any:
        return "offline" if value == "lexical" else value


class TCARQuery(BaseModel):
    query: str = Field(min_length=1)
    history: list[ChatMessage] = Field(default_factory=list)


class TCARRoute(BaseModel):
    chosen: list[str]
    """Agent ids, or ``["oos"]``."""
    reason: str
    via: Literal["router", "repair", "offline", "fallback"]
    registry_version: str


_TRAINED: dict[tuple[str, str], tuple[IntentClassifier, str]] = {}
_ADAPTED: dict[tuple[str, str], tuple[IntentClassifier, str]] = {}


def _offline_state(
    ctx: Context, cfg: TCARConfig, registry: AgentRegistry, cards: list[AgentCard]
) -> tuple[IntentClassifier, str]:
    """The offline router's state for this registry snapshot, stored in the run, and its
    version (see the module docstring)."""
    if cfg.router_state is not None:
        # A state from a store nobody vouches for is checked against the version that names
        # it before any of its numbers is used.
        base = checked_state(ctx, cfg.router_state, IntentClassifier)
        # Adapting is a pure function of the state and the registry's version (its cards and
        # out-of-scope examples), so it is done once per pair, not per query.
        adapted_key = (cfg.router_state, registry.version)
        found = _ADAPTED.get(adapted_key)
        if found is None:
            state = state_for_cards(base, cards, registry.out_of_scope)
            found = (state, cfg.router_state if state is base else state.version)
            if len(_ADAPTED) >= 8:
                _ADAPTED.pop(next(iter(_ADAPTED)))
            _ADAPTED[adapted_key] = found
    else:
        # Trained on exactly this registry (its version covers the cards and the
        # out-of-scope examples), so there is nothing to adapt.
        key = (registry.version, hash_value(cfg.train))
        found = _TRAINED.get(key)
        if found is None:
            trained = train_tcar(cards, registry.out_of_scope, config=cfg.train)
            found = (trained, trained.version)
            if len(_TRAINED) >= 4:  # states are large; registries change rarely
                _TRAINED.pop(next(iter(_TRAINED)))
            _TRAINED[key] = found
    state, version = found
    if not ctx.has_artifact(version):
        ctx.put_artifact(state)
    return state, version


def _offline_text(query: TCARQuery) -> str:
    # Our choice: in a multi-turn chat the offline router also reads the previous user turn,
    # so "and for my card?" after "block my account" still finds banking.
    previous = [m.content for m in query.history if m.role == "user"][-1:]
    return " ".join([*previous, query.query])


@agent(name="tcar-router", version="2", config=TCARConfig)
async def tcar_router(query: TCARQuery, ctx: Context) -> TCARRoute:
    """Choose agents for ``query``; see the module docstring."""
    cfg: TCARConfig = ctx.config
    registry: AgentRegistry = ctx.service("agents")
    cards = registry.snapshot()
    ids = [c.id for c in cards]
    version = registry.version
    attempts: list[dict[str, Any]] = []
    state_version: str | None = None
    offline: TrainedRouter | None = None

    def offline_router() -> TrainedRouter:
        nonlocal state_version, offline
        if offline is None:
            state, state_version = _offline_state(ctx, cfg, registry, cards)
            offline = TrainedRouter(state, cards)
        return offline

    scores: dict[str, float] = {}
    parsed: ParsedRoute | None = None
    via: Literal["router", "repair", "offline", "fallback"]

    if cfg.router_model is None:
        via = "offline"
        text, scores, offline_evidence = offline_router().reply(
            _offline_text(query), cfg.max_agents
        )
        parsed = parse_route(text, ids, cfg.max_agents)
        attempts.append({"by": "offline", "reply": text, "errors": parsed.errors})
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
        offline_evidence = {}
        if not parsed.ok:
            via = "fallback"
            if cfg.fallback == "fail":
                raise ValueError(
                    f"router model {cfg.router_model!r} broke the output contract "
                    f"({'; '.join(parsed.errors)}) and the fallback is 'fail'; fix: choose "
                    "fallback 'offline' or 'oos', or a model that follows the contract"
                )
            if cfg.fallback == "oos":
                parsed = ParsedRoute(
                    ids=[OOS], reason="the router's replies broke the contract; fallback: oos"
                )
            else:
                text, scores, offline_evidence = offline_router().reply(
                    _offline_text(query), cfg.max_agents
                )
                parsed = parse_route(text, ids, cfg.max_agents)
                attempts.append({"by": "offline", "reply": text, "errors": parsed.errors})
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
            "router_state": cfg.router_state,
            "train": cfg.train.model_dump(mode="json") if cfg.router_state is None else None,
        },
        state_version=state_version,
        evidence={
            "registry_version": version,
            "registry": [c.model_dump(mode="json", exclude={"examples"}) for c in cards],
            "attempts": attempts,
            "via": via,
            **({"offline": offline_evidence} if offline_evidence else {}),
        },
    )
    return TCARRoute(chosen=parsed.ids, reason=parsed.reason, via=via, registry_version=version)
