"""The per-run append-only event log, hash-chained.

Each event is one JSON line: ``seq`` (0, 1, 2 ...), ``prev`` (the hash of the previous event,
None for the first), ``type``, ``run``, ``t`` (wall-clock seconds, metadata), optional ``step``
and ``data``, and ``hash``: the key of the canonical bytes of the event without ``hash``.
Editing, dropping, reordering or inserting a line breaks the chain; the run head records the
final hash and count so that truncation is caught too.

The log is for live progress and observability: it is never an input to the root hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ._canonical import digest, to_canonical
from ._store import ArtifactStore

__all__ = [
    "ChainBreak",
    "EventLog",
    "chained_events",
    "event_body_hash",
    "event_line",
    "first_event",
    "run_origin",
    "walk_chain",
]

_OPTS = orjson.OPT_SORT_KEYS


def event_body_hash(event: dict[str, Any]) -> str:
    """Hash of an event's canonical bytes without its ``hash`` field."""
    body = {k: v for k, v in event.items() if k != "hash"}
    return digest(orjson.dumps(to_canonical(body), option=_OPTS))


def event_line(event: dict[str, Any]) -> bytes:
    """The exact line :meth:`EventLog.emit` writes for ``event`` (which holds its ``hash``)."""
    body = {k: v for k, v in event.items() if k != "hash"}
    encoded = orjson.dumps(body, option=_OPTS)
    return encoded[:-1] + b',"hash":"' + str(event.get("hash")).encode() + b'"}'


@dataclass(frozen=True)
class ChainBreak:
    """Where and why a log's chain stops: the line, what is wrong with it, and whether it
    is a line that is not a JSON object at all (what a write torn by a crash leaves)."""

    index: int
    detail: str
    unreadable: bool = False


def walk_chain(
    lines: list[bytes], run_id: str | None = None
) -> tuple[list[dict[str, Any]], ChainBreak | None]:
    """The events of ``lines`` that form an unbroken chain from the first, and where it
    breaks, if it does: each event a JSON object in the writer's exact form, hashing to its
    ``hash``, numbered 0, 1, 2 ... naming the previous one's hash (and, given ``run_id``,
    belonging to that run). The first line that is not stops it."""
    events: list[dict[str, Any]] = []
    prev: str | None = None
    loads, dumps = orjson.loads, orjson.dumps
    for i, line in enumerate(lines):
        try:
            event = loads(line)
        except orjson.JSONDecodeError as exc:
            return events, ChainBreak(i, f"not valid JSON: {exc}", unreadable=True)
        if not isinstance(event, dict):
            return events, ChainBreak(i, "not a JSON object", unreadable=True)
        # event_body_hash and event_line, fused: what orjson parsed is plain JSON data with
        # finite floats and 64-bit ints (it refuses the rest), so the canonical walk would
        # return it unchanged, and the body is encoded once for both checks. The hash is
        # taken out of the parsed event for the encoding and put back last, where the line
        # has it (cheaper than copying the event without it).
        stored = event.pop("hash", None)
        body = dumps(event, option=_OPTS)
        actual = digest(body)
        event["hash"] = stored
        if stored != actual:
            return events, ChainBreak(
                i,
                f"its content hashes to {actual}, not to its recorded hash {stored}: "
                f"the event ({event.get('type')!r}) was edited",
            )
        if line != body[:-1] + b',"hash":"' + actual.encode() + b'"}':
            return events, ChainBreak(i, "not in canonical form (the line was edited)")
        if event.get("seq") != i or event.get("prev") != prev:
            return events, ChainBreak(
                i,
                f"out of chain (seq {event.get('seq')!r}, prev {event.get('prev')!r}; "
                f"expected seq {i}, prev {prev}): events were removed, inserted or reordered",
            )
        if run_id is not None and event.get("run") != run_id:
            return events, ChainBreak(i, f"belongs to run {event.get('run')!r}")
        events.append(event)
        prev = actual
    return events, None


def chained_events(lines: list[bytes]) -> list[dict[str, Any]]:
    """The events of ``lines`` that form an unbroken chain from the first (see
    :func:`walk_chain`, which also says where and why it stops)."""
    return walk_chain(lines)[0]


def first_event(store: ArtifactStore, run_id: str) -> dict[str, Any] | None:
    """The run's first event (its ``run_start``) as a JSON object, unchecked (verification
    checks it), or None when the log is empty or its first line is not one (torn as it was
    written: nothing after it can exist)."""
    lines = store.read_events(run_id)[:1]
    if not lines:
        return None
    try:
        event = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def run_origin(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """The ``origin`` the run's ``run_start`` event records (``{}`` when it has none): where
    its pipeline came from, its sources, the run it resumed, its batch."""
    event = first_event(store, run_id) or {}
    data = event.get("data")
    origin = data.get("origin") if isinstance(data, dict) else None
    return origin if isinstance(origin, dict) else {}


class EventLog:
    """Writer for one run's event log. Not shared across event loops or threads."""

    def __init__(
        self,
        store: ArtifactStore,
        run_id: str,
        clock: Callable[[], float] = time.time,
        tap: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._clock = clock
        self.count = 0
        self.head: str | None = None
        self.tap = tap
        """Called with each event (its hash included) once it is appended: a live view for
        the run's caller. It sees what the log holds, in the log's order, and changes nothing."""

    def emit(self, type_: str, step: str | None = None, **data: Any) -> str:
        """Append one event and return its hash.

        ``data`` must be plain JSON data (str, int, finite float, bool, None, lists, dicts with
        str keys): the engine passes keys, ids and statuses, never user values, and orjson
        refuses anything else. (orjson would write a NaN as null; the engine passes no floats
        in ``data``, and verification re-canonicalises every event, so one would show.)
        """
        event: dict[str, Any] = {
            "seq": self.count,
            "prev": self.head,
            "type": type_,
            "run": self._run_id,
            "t": self._clock(),
        }
        if step is not None:
            event["step"] = step
        if data:
            event["data"] = data
        # Events are built from plain values above, so orjson's own output is canonical.
        body = orjson.dumps(event, option=_OPTS)
        h = digest(body)
        # Splice the hash in as the last member rather than re-encoding the whole event.
        line = body[:-1] + b',"hash":"' + h.encode() + b'"}'
        self._store.append_event(self._run_id, line)
        self.count += 1
        self.head = h
        if self.tap is not None:
            event["hash"] = h
            self.tap(event)
        return h
