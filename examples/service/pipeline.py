"""The chat pipeline the example service runs: TCAR routing, a streamed model, an approved tool.

One turn of a conversation is one run of :data:`pipeline`::

    text, state ──> query ──> team (TCAR) ──> act ──> reply, state

* ``query`` turns the message and the conversation so far (``state``, the previous turn's
  output when the run is a turn of a thread) into a TCAR query with its history;
* ``team`` is :data:`routers.tcar`, the TCAR team of ``examples/tcar_clinc.py``: the offline
  trained router chooses among two agents (the ``assistant``, which answers through the chat
  model, and ``notes``, which proposes to save a note), the chosen ones run in parallel and the
  refining agent merges their replies; the routing and the merge are recorded decisions;
* ``act`` carries out what an agent proposed, asking first: before the ``notes.save`` tool
  runs it asks a person ``ctx.ask("Save the note ...?", Approval)``. With no answer yet the run
  ends ``waiting``; an answer resumes it, the earlier steps come from the record, and the tool
  runs once. It then appends the message and the reply to the conversation (``state``).

The model is the registry's ``assistant``: by default an OpenAI-compatible server at a base URL
(``$ORCH_SERVICE_BASE_URL``, model name ``$ORCH_SERVICE_MODEL``), or any registry file
(``$ORCH_MODELS``) that defines the id ``assistant``. This file imports only the public faces of
orch, agents and routers (``orch replay`` loads it by path, with its :func:`services`), and it
must never do anything outside ``ctx``: the tool is an effect, the question an ask.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import orch
from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry
from agents.refiner import AgentReply
from orch import Context, PipelineBuilder, agent
from routers import AgentCard, AgentRegistry, TCARQuery, TCARResult, tcar

__all__ = [
    "ASSISTANT_MODEL",
    "Approval",
    "Conversation",
    "NoteBook",
    "Turn",
    "build",
    "model_hub",
    "note_text",
    "pipeline",
    "services",
]

ASSISTANT_MODEL = "assistant"
"""The registry's model id the assistant agent calls."""
NOTES_AGENT = "notes"
SAVE_NOTE = "notes.save"
"""The tool the notes agent proposes (and the ``target`` of its effect)."""
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
DEFAULT_NOTES = "service-notes.jsonl"

SYSTEM_PROMPT = "You are a concise, friendly assistant. Answer in a few sentences."

# Routing is TCAR's offline router, a classifier trained on the two cards (at the first turn,
# then stored in the run): no router model, its probabilities as the reason.
TEAM: dict[str, Any] = {"router": {"max_agents": 2}}


class Conversation(BaseModel):
    """A thread's state: the messages so far (the pipeline output ``state`` of each turn,
    the input ``state`` of the next)."""

    messages: list[ChatMessage] = Field(default_factory=list)


class Message(BaseModel):
    text: str = Field(min_length=1)
    state: Conversation | None = None


class Approval(BaseModel):
    """The answer a person gives before a tool runs."""

    approve: bool
    note: str = ""
    """Why (optional): kept in the record with the answer."""


class TurnInput(BaseModel):
    text: str
    state: Conversation | None = None
    team: TCARResult


class Turn(BaseModel):
    reply: str
    state: Conversation
    route: list[str]
    """The agents TCAR chose (``["oos"]`` when none fitted)."""


_NOTE_VERBS = re.compile(r"\b(note|notes|remember|remind|write down|jot)\b", re.I)
_NOTE_PREFIX = re.compile(
    r"^\s*(?:please\s+)?(?:(?:save|add|make|take|keep|write down|jot down|remember)\b\s*)?"
    r"(?:(?:a|the|this|my)\b\s*)?(?:notes?\b\s*)?(?:(?:that|to)\b\s*)?",
    re.I,
)


def note_text(text: str) -> str:
    """The note a message asks to save: what follows the first colon, else the message
    without its leading "save a note that" (empty when nothing is left)."""
    head, colon, tail = text.partition(":")
    note = tail if colon else _NOTE_PREFIX.sub("", head, count=1)
    return note.strip()


@agent(name="service-query", version="1")
async def to_query(m: Message, ctx: Context) -> TCARQuery:
    """The TCAR query of one message: the text and the conversation before it."""
    return TCARQuery(query=m.text, history=m.state.messages if m.state else [])


@agent(name="service-assistant", version="1")
async def assistant(q: TCARQuery, ctx: Context) -> AgentReply:
    """Answer through the chat model, with the conversation so far. Its tokens reach the
    service's client as the model writes them (the adapter streams when a run is listened
    to); the record holds the whole answer."""
    hub: ModelHub = ctx.service("models")
    messages = [
        ChatMessage(role="system", content=SYSTEM_PROMPT),
        *q.history,
        ChatMessage(role="user", content=q.query),
    ]
    reply = await hub.chat(ctx, ChatRequest(model=ASSISTANT_MODEL, messages=messages))
    return AgentReply(text=reply.text)


@agent(name="service-notes", version="1")
async def notes_agent(q: TCARQuery, ctx: Context) -> AgentReply:
    """Propose to save a note (the ``act`` step asks before it does); decline a message that
    asks for none (the router also reads the previous user turn)."""
    note = note_text(q.query)
    if not _NOTE_VERBS.search(q.query) or not note:
        return AgentReply(text="There is no note to save in this message.", declined=True)
    return AgentReply(text=f"I can save the note {note!r} once you approve.", answer=SAVE_NOTE)


@agent(name="service-act", version="1")
async def act(t: TurnInput, ctx: Context) -> Turn:
    """Ask before the proposed tool call, make it, and append the turn to the conversation."""
    reply = t.team.final.text
    proposed = any(
        a.agent == NOTES_AGENT and a.reply is not None and a.reply.answer == SAVE_NOTE
        for a in t.team.answers
    )
    if proposed:
        note = note_text(t.text)
        # Ask before the effect: a resumed run serves what came before from the record and
        # makes the tool call once, after the answer.
        approval = await ctx.ask(f"Save the note {note!r}?", Approval)
        if approval.approve:
            book: NoteBook = ctx.service("notes")
            saved = await ctx.effect("tool", SAVE_NOTE, {"note": note}, lambda: book.save(note))
            reply = f"Saved note #{saved['number']}: {note}"
        else:
            why = f" ({approval.note})" if approval.note else ""
            reply = f"The note was not saved{why}."
    before = t.state.messages if t.state else []
    state = Conversation(
        messages=[
            *before,
            ChatMessage(role="user", content=t.text),
            ChatMessage(role="assistant", content=reply),
        ]
    )
    return Turn(reply=reply, state=state, route=t.team.route.chosen)


def build() -> orch.Pipeline:
    p = PipelineBuilder("service-chat")
    text = p.input("text", str)
    state = p.input("state", Conversation | None)
    query = p.node("query", to_query, text=text, state=state)
    team = p.node("team", tcar.with_config(**TEAM), query)
    turn = p.node("act", act, text=text, state=state, team=team)
    p.output("reply", turn.field("reply"))
    p.output("state", turn.field("state"))
    return p.build()


pipeline = build()


class NoteBook:
    """The local tool behind ``notes.save``: appends each note to a JSON-lines file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    async def save(self, note: str) -> dict[str, Any]:
        """Append ``note``; return its number (1, 2, ...) and the note."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as f:
            f.seek(0)
            number = sum(1 for _ in f) + 1
            f.write(json.dumps({"number": number, "note": note}) + "\n")
        return {"number": number, "note": note}

    def notes(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]


def agent_registry() -> AgentRegistry:
    """The agents TCAR routes between (cards: what the offline router is trained on)."""
    return AgentRegistry(
        [
            (
                AgentCard(
                    id="assistant",
                    name="assistant",
                    description="Answers questions and chats: explains, describes, summarises "
                    "and suggests; greetings, facts, advice and small talk.",
                    examples=[
                        "hello",
                        "hi, how are you?",
                        "what is the capital of France?",
                        "explain how tides work",
                        "tell me a joke",
                        "can you help me with something?",
                        "thanks, that helps",
                    ],
                ),
                assistant,
            ),
            (
                AgentCard(
                    id=NOTES_AGENT,
                    name="notes",
                    description="Saves notes for the user: remember something, write it down, "
                    "keep a note or a reminder.",
                    examples=[
                        "save a note: buy oat milk",
                        "note that the meeting moved to 3pm",
                        "remember to call Alice",
                        "write down my parking spot: level 3",
                        "add a note",
                    ],
                ),
                notes_agent,
            ),
        ]
    )


def model_hub(
    base_url: str | None = None, model: str | None = None, models_file: str | None = None
) -> ModelHub:
    """The hub serving ``assistant``: the registry file ``models_file`` (or ``$ORCH_MODELS``)
    when given, else an OpenAI-compatible server at ``base_url`` (or
    ``$ORCH_SERVICE_BASE_URL``) serving ``model`` (or ``$ORCH_SERVICE_MODEL``). The API key,
    if the server needs one, comes from ``$OPENAI_API_KEY`` and is never recorded."""
    models_file = models_file or os.environ.get("ORCH_MODELS")
    if models_file:
        hub = ModelHub.load(models_file)
        hub.registry.model(ASSISTANT_MODEL)  # fail now, naming the id, not at the first turn
        return hub
    registry = {
        "providers": {
            "served": {
                "kind": "openai",
                "base_url": base_url or os.environ.get("ORCH_SERVICE_BASE_URL", DEFAULT_BASE_URL),
                "max_concurrency": 32,
            }
        },
        "models": {
            ASSISTANT_MODEL: {
                "provider": "served",
                "name": model or os.environ.get("ORCH_SERVICE_MODEL", "default"),
            }
        },
    }
    return ModelHub(ModelRegistry.from_dict(registry, "the service's model settings"))


def services(
    base_url: str | None = None,
    model: str | None = None,
    models_file: str | None = None,
    notes: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """What the agents reach through ``ctx.service``: the model hub, TCAR's agent registry and
    the note book (``notes``, else ``$ORCH_SERVICE_NOTES``, else ``service-notes.jsonl``).
    ``orch replay`` calls it with no arguments: a replay serves every effect from the record,
    so it reaches neither the model nor the note book."""
    return {
        "models": model_hub(base_url, model, models_file),
        "agents": agent_registry(),
        "notes": NoteBook(notes or os.environ.get("ORCH_SERVICE_NOTES", DEFAULT_NOTES)),
    }
