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
from typing import Any

import orjson

from .canonical import digest, to_canonical
from .store import ArtifactStore

__all__ = ["EventLog", "chained_events", "event_body_hash", "event_line"]

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


def chained_events(lines: list[bytes]) -> list[dict[str, Any]]:
    """The events of ``lines`` that form an unbroken chain from the first: each a JSON
    object in the writer's exact form, hashing to its ``hash``, numbered 0, 1, 2 ... and
    naming the previous one's hash. The first line that is not stops it (a torn tail, an
    edit); :mod:`traces.verify` says which and why."""
    events: list[dict[str, Any]] = []
    prev: str | None = None
    for i, line in enumerate(lines):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            break
        if not isinstance(event, dict):
            break
        h = event.get("hash")
        if h != event_body_hash(event) or line != event_line(event):
            break
        if event.get("seq") != i or event.get("prev") != prev:
            break
        events.append(event)
        prev = h
    return events


class EventLog:
    """Writer for one run's event log. Not shared across event loops or threads."""

    def __init__(
        self,
        store: ArtifactStore,
        run_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._clock = clock
        self.count = 0
        self.head: str | None = None

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
        return h
