"""Token deltas: the text of a model call reaching the run's caller as it arrives.

While an effect is being made live (:meth:`orch.Context.effect` calling its ``perform``) in a
run that someone listens to (``orch.stream``, ``arun(on_event=...)``), :class:`EffectListener`
is the current one (a context variable, so that concurrent effects of one step each have their
own). A model adapter asks :func:`wants_deltas` whether to stream at the transport level at
all, and hands each text delta to :func:`stream_delta`, which gives it to the caller as an
unrecorded ``token`` event (``data``: the effect's ``index`` and ``target``, and the
``text``). With no listener, or outside an effect, both are a context-variable read and
nothing else, and nothing is ever set: a run nobody listens to pays for none of this.

A served effect (replay, resume) has no call to stream; :class:`EffectListener` also replays
its recorded answer as ``token`` events, cut into chunks by the effect's ``rechunk``.

Tokens are for the caller only. This module must never record or hash anything, never write
to a store, and never change what the effect returns: the recorded ``effect`` event and the
effect record are the authority on what the call answered (a retried call streams again from
its start, and a call that fails midway has sent the tokens it had).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

from orch._events import EventSink, RunEvent
from orch.errors import OrchError

__all__ = ["EffectListener", "stream_delta", "wants_deltas"]

R = TypeVar("R")

_CURRENT: ContextVar[EffectListener | None] = ContextVar("orch_effect_listener", default=None)


class EffectListener:
    """Where the live events of one effect go: its ``effect_start`` and its ``token`` events."""

    __slots__ = ("clock", "index", "kind", "run_id", "sink", "step_id", "target")

    def __init__(
        self,
        sink: EventSink,
        run_id: str,
        clock: Callable[[], float],
        step_id: str,
        index: int,
        kind: str,
        target: str,
    ) -> None:
        self.sink = sink
        self.run_id = run_id
        self.clock = clock
        self.step_id = step_id
        self.index = index
        self.kind = kind
        self.target = target

    def start(self) -> None:
        """The ``effect_start`` event: the call is about to be made, or served."""
        data = {"index": self.index, "kind": self.kind, "target": self.target}
        self.sink(RunEvent("effect_start", self.run_id, self.step_id, data, t=self.clock()))

    def token(self, text: str) -> None:
        """One ``token`` event with ``text``."""
        data = {"index": self.index, "target": self.target, "text": text}
        self.sink(RunEvent("token", self.run_id, self.step_id, data, t=self.clock()))

    async def perform(self, perform: Callable[[], Awaitable[R]]) -> R:
        """Make the call with this listener current, so that :func:`stream_delta` reaches it."""
        reset = _CURRENT.set(self)
        try:
            return await perform()
        finally:
            _CURRENT.reset(reset)

    def replay(self, chunks: Iterable[str]) -> None:
        """Send a served answer's ``chunks`` (what the effect's ``rechunk`` made of it) as
        ``token`` events."""
        for chunk in chunks:
            if type(chunk) is not str:
                raise OrchError(
                    f"step {self.step_id!r}: the rechunk of effect #{self.index} "
                    f"({self.target}) gave {type(chunk).__name__} {chunk!r}; fix: return the "
                    "response's text as a sequence of str"
                )
            if chunk:
                self.token(chunk)


def stream_delta(text: str) -> None:
    """Give ``text``, the next piece of the answer of the effect being made in this task, to
    the run's caller as a ``token`` event. Does nothing when nobody listens, outside an
    effect, or for empty text. For model adapters: call it from the event loop's thread."""
    listener = _CURRENT.get()
    if listener is not None and text:
        listener.token(text)


def wants_deltas() -> bool:
    """True when someone listens to the effect being made in this task: an adapter streams
    at the transport level only then (or when the request asks for it)."""
    return _CURRENT.get() is not None
