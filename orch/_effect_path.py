"""The effect path of a run: the one place that decides how each effect is answered.

For every effect a step starts (:meth:`orch.Context.effect`), :class:`EffectPath` decides,
by the run's mode and the record it was given (:mod:`orch._effects`), whether the call is
served from that record or made live, and it writes the effect's record and event:

* **record**: made live, recorded;
* **replay**: served from the record when the request is the recorded one byte for byte,
  else a divergence (a changed request, an effect the record lacks, one the step no longer
  makes); nothing is ever made live;
* **resume**: served from the record when the lineage finished it (a failure is made again,
  unless it was kept whole as a result and the step moved past it), made live otherwise.

When the run has a listener, each effect also sends it an unrecorded ``effect_start`` event,
and the ``token`` events of its answer (:mod:`orch._deltas`): the live call's deltas as its
adapter streams them, or a served answer cut by the effect's ``rechunk``. The ``effect`` event
of the log carries the record's token usage and cost. Nothing a listener hears changes a
record.

It also holds the anchors of other hash chains that steps defer (:meth:`EffectPath.anchor`,
the tool broker's audit chains): only the latest anchor of each chain waits, and it goes into
the store's ledger when a step ends ok, before that step's record is written
(:meth:`EffectPath.check_all_made`, which the engine calls then), when the run ends, before
its seal (:meth:`EffectPath.flush_anchors`), or once :data:`ANCHOR_LIMIT` of them wait.

Record bytes are built by :mod:`traces._records`. This module must never decide what a step
does with the answer, and never make a call itself: the caller passes ``perform``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel

from orch._deltas import EffectListener
from orch._effects import Divergence, EffectSource, RecordedEffect, RunMode
from orch._events import EventSink
from orch.errors import OrchError, RecordedEffectError, ReplayDivergenceError, type_path
from traces import (
    AnchorEntry,
    ArtifactStore,
    ErrorInfo,
    EventLog,
    canonical_bytes,
    effect_record_bytes,
    field_diff,
    ledger_of,
)

__all__ = ["ANCHOR_LIMIT", "EffectPath", "error_info", "type_name"]

ANCHOR_LIMIT: Final = 64
"""How many deferred anchors of one chain may wait before the latest is written anyway: a
step that makes many calls leaves at most this many elements of a chain unanchored."""

R = TypeVar("R")

Meter = Callable[[Any], tuple[Mapping[str, int], float | None]]
Verdict = Callable[[Any], Mapping[str, str] | None]
Rechunk = Callable[[Any], Sequence[str]]


def type_name(exc: BaseException) -> str:
    """An exception's type as records name it: ``ValueError``, ``pkg.mod.Error``. Hashed:
    the name a type is recorded under must not change."""
    if isinstance(exc, RecordedEffectError):  # a replayed failure keeps its recorded type
        return exc.original_type
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else type_path(t)


def error_info(exc: BaseException) -> ErrorInfo:
    """A failure as records state it, a step's or an effect's: :func:`type_name` and the
    message (a replayed failure keeps its recorded message too)."""
    if isinstance(exc, RecordedEffectError):
        return ErrorInfo(type=exc.original_type, message=exc.original_message)
    return ErrorInfo(type=type_name(exc), message=str(exc))


def _metered_fields(usage: Mapping[str, int], cost: float | None) -> dict[str, Any]:
    """The ``usage`` and ``cost_usd`` of an ``effect`` event: the record's, when it has them."""
    fields: dict[str, Any] = {}
    if usage:
        fields["usage"] = dict(usage)
    if cost is not None:
        fields["cost_usd"] = cost
    return fields


class EffectPath:
    """How one run answers its effects (see the module docstring)."""

    def __init__(
        self,
        store: ArtifactStore,
        events: EventLog,
        mode: RunMode = "record",
        source: EffectSource | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.mode: RunMode = mode
        self.source = source
        self.divergences: list[Divergence] = []
        """Where a replay or resume stopped matching its record (kept even if an agent
        swallows the error)."""
        self.sink: EventSink | None = None
        """The run's listener (:meth:`listen`), for ``effect_start`` and ``token`` events."""
        self._run_id = ""
        self._clock: Callable[[], float] = time.time
        self._anchors: dict[tuple[str, str], tuple[int, str, str, int]] = {}
        """Deferred anchors by (source, subject): the latest (seq, hash, run) and how many
        deferrals it stands for."""
        self._ledger: bool | None = None
        """Whether the store keeps a ledger (asked once)."""

    def listen(self, sink: EventSink | None, run_id: str, clock: Callable[[], float]) -> None:
        """Send each effect's unrecorded live events to ``sink`` (None: to no one)."""
        self.sink, self._run_id, self._clock = sink, run_id, clock

    def _listener(self, step_id: str, index: int, kind: str, target: str) -> EffectListener:
        assert self.sink is not None
        return EffectListener(self.sink, self._run_id, self._clock, step_id, index, kind, target)

    def diverge(self, divergence: Divergence) -> ReplayDivergenceError:
        self.divergences.append(divergence)
        return ReplayDivergenceError(divergence)

    def recorded_request(self, step_id: str, index: int) -> Any:
        """The request recorded at ``(step_id, index)`` in the record served, else None."""
        slot = self.source.get(step_id, index) if self.source is not None else None
        return None if slot is None else self.store.get_value(slot[1].request)

    # -- served from the record ------------------------------------------------------------

    def lookup(
        self, step_id: str, index: int, target: str, request: str, *, keeps_failures: bool
    ) -> tuple[str, RecordedEffect] | None:
        """The recorded effect that answers this call, or None to make it live. Raises
        :class:`~orch.errors.ReplayDivergenceError` where the call and the record disagree."""
        source = self.source
        if source is None:
            return None
        slot = source.get(step_id, index)
        if (
            slot is not None
            and self.mode == "resume"
            and slot[1].status != "ok"
            and (
                not keeps_failures
                or slot[1].response is None
                or source.get(step_id, index + 1) is None
            )
        ):
            # Resuming retries what failed; replay reproduces it. A failure recorded whole (a
            # tool's structured outcome) that the step moved past is served: the step's later
            # effects were made on the strength of it.
            slot = None
        if slot is None:
            if self.mode == "replay":
                raise self.diverge(
                    Divergence(step_id, index, "unexpected-effect", target, None, request)
                )
            return None
        rec = slot[1]
        if rec.request != request:
            raise self.diverge(
                Divergence(
                    step_id,
                    index,
                    "request-changed",
                    target,
                    rec.request,
                    request,
                    tuple(
                        field_diff(self.store.get_value(rec.request), self.store.get_value(request))
                    ),
                )
            )
        return slot

    def serve(
        self,
        step_id: str,
        index: int,
        slot: tuple[str, RecordedEffect],
        *,
        keeps_failures: bool,
        response_model: type[BaseModel] | None,
        rechunk: Rechunk | None = None,
    ) -> Any:
        """Answer the call from ``slot``: its recorded response, or its recorded failure
        raised again as :class:`~orch.errors.RecordedEffectError`. A listener hears the
        effect start and, given ``rechunk``, the response's text again as ``token`` events."""
        key, rec = slot
        assert self.source is not None
        listener = None
        if self.sink is not None:
            listener = self._listener(step_id, index, rec.kind, rec.target)
            listener.start()
        try:
            served_failure = keeps_failures and rec.response is not None
            if (rec.status != "ok" and not served_failure) or rec.response is None:
                err = rec.error
                raise RecordedEffectError(
                    err.type if err else "Error", err.message if err else "failed"
                )
            value = self.store.get_value(rec.response)
            if response_model is not None:
                value = response_model.model_validate(value)
            if listener is not None and rechunk is not None:
                listener.replay(rechunk(value))
        finally:  # the log names the served record whatever the step makes of it
            self.events.emit(
                "effect",
                step_id,
                record=key,
                index=index,
                kind=rec.kind,
                target=rec.target,
                status=rec.status,
                served_from=self.source.origin(step_id, index),
                **_metered_fields(rec.usage, rec.cost_usd),
            )
        return value

    def check_all_made(self, step_id: str, made: int) -> None:
        """After a step ended ok, before its record is written (the engine calls this then):
        the anchors deferred so far go into the ledger, and, in replay, the record must not
        hold effects the step did not make."""
        if self._anchors:
            self.flush_anchors()
        if self.mode != "replay" or self.source is None:
            return
        slot = self.source.get(step_id, made)
        if slot is not None:
            rec = slot[1]
            raise self.diverge(
                Divergence(step_id, made, "missing-effect", rec.target, rec.request, None)
            )

    # -- anchors of other hash chains ------------------------------------------------------

    def anchor(
        self, source: str, subject: str, seq: int, hash: str, run: str, *, defer: bool
    ) -> int | None:
        """Anchor element ``seq`` (hashing to ``hash``) of chain ``subject`` of ``source`` in
        the store's ledger; return the ledger index, or None for a store that keeps no ledger
        and for a deferred anchor. A deferred one replaces the chain's waiting anchor when its
        ``seq`` is later: the hash of element n commits to elements 0..n through the chain's
        own links, so the latest anchor covers every earlier one."""
        keeps = self._ledger
        if keeps is None:
            keeps = self._ledger = ledger_of(self.store).supported
        if not keeps:
            return None
        key = (source, subject)
        waiting = self._anchors.get(key)
        if not defer:
            if waiting is not None and waiting[0] <= seq:
                del self._anchors[key]  # covered by this one
            return ledger_of(self.store).append(
                AnchorEntry(source=source, subject=subject, seq=seq, hash=hash, run=run)
            )
        if waiting is None or seq > waiting[0]:
            count = 1 if waiting is None else waiting[3] + 1
            self._anchors[key] = (seq, hash, run, count)
        else:
            self._anchors[key] = (*waiting[:3], waiting[3] + 1)
        if self._anchors[key][3] >= ANCHOR_LIMIT:
            self._write_anchor(key)
        return None

    def flush_anchors(self) -> None:
        """Write every deferred anchor now, in the order of their (source, subject)."""
        for key in sorted(self._anchors):
            self._write_anchor(key)

    def _write_anchor(self, key: tuple[str, str]) -> None:
        seq, hash, run, _ = self._anchors[key]
        ledger_of(self.store).append(
            AnchorEntry(source=key[0], subject=key[1], seq=seq, hash=hash, run=run)
        )
        del self._anchors[key]  # after the append: one that failed is tried again later

    # -- made live ---------------------------------------------------------------------------

    async def make(
        self,
        step_id: str,
        index: int,
        kind: str,
        target: str,
        request: str,
        perform: Callable[[], Awaitable[R]],
        *,
        meter: Meter | None,
        failure: Verdict | None,
        done: Callable[[str], None],
        encode: Callable[[Any], bytes] | None = None,
    ) -> R:
        """Make the call and record it; ``done`` receives the effect record's key (also when
        the call raised, before the error propagates). ``encode``: the response's canonical
        bytes made by the caller (:meth:`orch.Context.effect`)."""
        listener = None
        if self.sink is not None:
            listener = self._listener(step_id, index, kind, target)
            listener.start()
        started = time.perf_counter()
        try:
            if listener is None:
                response = await perform()
            else:  # the call's deltas reach the listener (orch.stream_delta)
                response = await listener.perform(perform)
        except Exception as exc:
            failed = error_info(exc)
            done(
                self._record(step_id, index, kind, target, request, None, failed, {}, None, started)
            )
            await self.store.aflush()  # durable before the step goes on: never made twice
            raise
        usage, cost = self._metered(step_id, index, target, meter, response)
        response_key = self.store.put(
            canonical_bytes(response) if encode is None else encode(response)
        )
        verdict = failure(response) if failure is not None else None
        error: ErrorInfo | None = None
        if verdict is not None:
            if set(verdict) != {"type", "message"}:
                raise OrchError(
                    f"step {step_id!r}: the failure hook of effect #{index} ({target}) returned "
                    f"{dict(verdict)!r}; fix: return {{'type': str, 'message': str}} or None"
                )
            error = ErrorInfo(type=verdict["type"], message=verdict["message"])
        done(
            self._record(
                step_id, index, kind, target, request, response_key, error, usage, cost, started
            )
        )
        # A store that batches its writes (SQLite, PostgreSQL) commits the effect's record
        # before the step goes on, so that a crash after it never makes the call again.
        await self.store.aflush()
        return response

    @staticmethod
    def _metered(
        step_id: str, index: int, target: str, meter: Meter | None, response: Any
    ) -> tuple[Mapping[str, int], float | None]:
        if meter is None:
            return {}, None
        usage, cost = meter(response)
        bad = {k: v for k, v in usage.items() if type(v) is not int or type(k) is not str}
        if bad or not (cost is None or isinstance(cost, (int, float))):
            raise OrchError(
                f"step {step_id!r}: the meter of effect #{index} ({target}) returned usage "
                f"{dict(usage)!r} and cost {cost!r}; fix: return token counts as "
                "{name: int} and the cost as a float or None"
            )
        if cost is not None and not math.isfinite(cost):
            raise OrchError(
                f"step {step_id!r}: the meter of effect #{index} ({target}) returned cost "
                f"{cost!r}; fix: return a finite cost in USD, or None"
            )
        return usage, None if cost is None else float(cost)

    def _record(
        self,
        step_id: str,
        index: int,
        kind: str,
        target: str,
        request: str,
        response: str | None,
        error: ErrorInfo | None,
        usage: Mapping[str, int],
        cost: float | None,
        started: float,
    ) -> str:
        status: Literal["ok", "failed"] = "ok" if error is None else "failed"
        key = self.store.put(
            effect_record_bytes(
                step_id=step_id,
                index=index,
                kind=kind,
                target=target,
                request=request,
                response=response,
                status=status,
                error=error,
                usage=usage,
                cost_usd=cost,
            )
        )
        # Latency is wall-clock time: it goes to the event log, never into a hashed record.
        self.events.emit(
            "effect",
            step_id,
            record=key,
            index=index,
            kind=kind,
            target=target,
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            **_metered_fields(usage, cost),
        )
        return key
