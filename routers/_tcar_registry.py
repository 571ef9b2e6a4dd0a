"""The agents a TCAR router may choose: their cards and the registry that holds them.

An :class:`AgentCard` is what the router knows of an agent (id, name, description, example
queries, optionally a group); the :class:`AgentRegistry` holds the cards with the runnable
agent behind each, and onboarding is adding or removing a card at run time (the offline
router adapts at once). Its :attr:`version`, a hash of the cards, goes into every decision.
:data:`OOS` is the id of "out of scope".

Both the reasoning router (:mod:`routers._tcar`) and the offline trained router
(:mod:`routers._tcar_trained`) read these; this module must import neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from orch import Agent
from traces import hash_value

__all__ = ["OOS", "AgentCard", "AgentRegistry"]

OOS = "oos"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class AgentCard(BaseModel):
    """What the router knows about an agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    examples: list[str] = Field(default_factory=list)
    """Sample queries this agent handles (the offline router's training data, not the prompt)."""
    group: str | None = Field(default=None, min_length=1, max_length=64)
    """The family the agent belongs to (a domain, a team): when cards have groups, the offline
    router also learns which group a query is about and lets it order the routing set
    (:mod:`routers._tcar_trained`). None: no group (and not written out, so a card without
    one dumps, and hashes, as cards did before groups existed)."""

    @model_serializer(mode="wrap")
    def _without_no_group(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.group is None and isinstance(data, dict):
            data.pop("group", None)
        return data

    def model_post_init(self, _context: Any) -> None:
        if not _ID.match(self.id) or self.id.lower() == OOS:
            raise ValueError(
                f"agent id {self.id!r} must be letters, digits, '_', '.', ':' or '-' and not "
                f"{OOS!r}; fix: rename the agent"
            )


class AgentRegistry:
    """The agents a TCAR router may choose, with the runnable agent behind each card.

    Mutable on purpose (onboarding at run time); a router reads a :meth:`snapshot` once per
    step and records its :attr:`version`.
    """

    def __init__(
        self,
        cards: Iterable[AgentCard | tuple[AgentCard, Agent[Any, Any]]] = (),
        *,
        out_of_scope: Iterable[str] = (),
    ):
        self._cards: dict[str, AgentCard] = {}
        self._version: str | None = None  # computed once per change of the cards
        self._out_of_scope: tuple[str, ...] = tuple(sorted(set(out_of_scope)))
        self._agents: dict[str, Agent[Any, Any]] = {}
        for item in cards:
            if isinstance(item, tuple):
                self.add(*item)
            else:
                self.add(item)

    def add(self, card: AgentCard, runner: Agent[Any, Any] | None = None) -> None:
        """Onboard an agent; its id must be new."""
        if card.id in self._cards:
            raise ValueError(
                f"agent id {card.id!r} is already registered; fix: remove it first, or pick "
                "another id"
            )
        self._cards[card.id] = card
        self._version = None
        if runner is not None:
            self._agents[card.id] = runner

    def remove(self, agent_id: str) -> None:
        """Offboard an agent."""
        if agent_id not in self._cards:
            raise KeyError(f"no agent {agent_id!r} in the registry (have: {self.ids()})")
        del self._cards[agent_id]
        self._version = None
        self._agents.pop(agent_id, None)

    @property
    def out_of_scope(self) -> tuple[str, ...]:
        """Queries no agent should take: the offline router learns to decline them (fixed
        when the registry is made; part of its version)."""
        return self._out_of_scope

    def ids(self) -> list[str]:
        return sorted(self._cards)

    def cards(self) -> list[AgentCard]:
        return [self._cards[i] for i in self.ids()]

    def runner(self, agent_id: str) -> Agent[Any, Any]:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(
                f"agent {agent_id!r} has a card but no runnable agent; fix: "
                "registry.add(card, agent)"
            ) from None

    def __len__(self) -> int:
        return len(self._cards)

    @property
    def version(self) -> str:
        """Hash of the descriptions (id, name, description, examples, group when set), sorted
        by id, and of the out-of-scope examples when there are any."""
        if self._version is None:
            cards = [c.model_dump(mode="json") for c in self.cards()]
            if not self.out_of_scope:  # the version registries had before out-of-scope ones
                self._version = hash_value(cards)
            else:
                self._version = hash_value(
                    {"cards": cards, "out_of_scope": list(self.out_of_scope)}
                )
        return self._version

    def snapshot(self) -> list[AgentCard]:
        if not self._cards:
            raise ValueError(
                "the agent registry is empty, so there is nothing to route to; fix: "
                "registry.add(AgentCard(...), agent) before running"
            )
        return self.cards()
