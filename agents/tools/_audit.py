"""The audit log: who called which tool, with what, and how it went (the broker's last stage).

One :class:`AuditEntry` per attempt the broker made or refused: principal and tenant, run,
step and effect, tool and server, the digest of the (redacted) arguments, the keys of the
recorded request and effect (whose outcome holds the result), the outcome, whether the
server was reached, the latency and the allocated timeout. Entries are hash-chained per
tenant (each holds the hash of the tenant's previous one), so a tenant's log can be verified
alone, and a tenant reads only its own entries: there is no call that lists another
tenant's.

Each entry is also anchored in the run store's ledger (an ``anchor`` entry naming the
tenant, the sequence number and the hash, see :mod:`traces._ledger_entries`), so a tenant's
chain cannot be rolled back, truncated or forked without disagreeing with the ledger and
the checkpoints that cover it: :func:`verify_anchored` checks a chain against them.

An anchor of entry n covers entries 0 to n: each entry holds the hash of the one before it,
so none of them can change, go or be inserted without changing entry n's hash. So a run
writes one anchor per tenant and step, not one per call (:meth:`orch.Context.anchor` with
``defer``): the latest entry its calls made, when the step ends ok (before the step's
record is written), else before the run is sealed, and at least every 64 entries. Until
then the entries of a step are unanchored, and a process that dies mid-step leaves them so
until the tenant's next anchor (of any run: it covers every earlier entry). Only entries of
recorded attempts wait: each names its effect record (``result``), and that record and the
run's ``effect`` event show the call too, anchored with the run's log when a resume takes
the run over or the run ends. :func:`verify_anchored` checks that every tool call the
store's runs recorded live for the tenant has its entry, so a chain rolled back or truncated
past such entries is caught before any anchor covers them, as a change to what they share
with the record is; what only the entry holds (latency, wall time) is covered by the
tenant's next anchor, as a killed run's last events are by its resume (the docs' limits).
An entry that no record shows (a denial, a refusal before anything was recorded) is
anchored at once.

Latency and wall time are facts of this execution: they live here and in the run's event
log, never in a hashed run record. Backends: :class:`MemoryAuditLog` and
:class:`SQLiteAuditLog` (one file, safe for several processes appending at once).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict

from traces import AnchorEntry, ArtifactStore, chained_events, digest, ledger_of, parse_entry
from traces.errors import TraceError

__all__ = [
    "AuditEntry",
    "AuditLog",
    "MemoryAuditLog",
    "SQLiteAuditLog",
    "entry_hash",
    "verify_anchored",
    "verify_chain",
]


class AuditEntry(BaseModel):
    """One attempt of one tool call, or one refusal."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant: str
    seq: int
    """Position in the tenant's chain, from 0."""
    prev: str | None
    """Hash of the tenant's previous entry (None for the first)."""
    principal: str
    scopes: list[str]
    run_id: str | None
    step_id: str | None
    effect: int | None
    """The effect index in the step's record; None when nothing was recorded (a denial)."""
    tool: str
    source: str | None
    version: str | None
    attempt: int
    arguments: str
    """Digest of the canonical redacted arguments."""
    request: str | None
    """Key of the recorded request artifact."""
    result: str | None
    """Key of the recorded effect (its request, the whole outcome with the result or the
    structured error, and its status), when the attempt was recorded."""
    outcome: str
    """``ok`` or the error category."""
    message: str = ""
    retryable: bool = False
    invoked: bool
    """Whether the call reached the tool (a refusal never does)."""
    latency_ms: float
    timeout_s: float | None
    at: float
    """Wall-clock time (seconds since the epoch) when the attempt ended."""
    hash: str
    """Digest of every other field."""


def entry_hash(body: Mapping[str, Any]) -> str:
    return digest(orjson.dumps({k: v for k, v in body.items() if k != "hash"}, option=_OPTS))


_OPTS = orjson.OPT_SORT_KEYS
_VALIDATE = AuditEntry.__pydantic_validator__.validate_python


@runtime_checkable
class AuditLog(Protocol):
    """Where audit entries go. ``append`` chains and stores one; ``entries`` reads a tenant's."""

    def append(self, fields: Mapping[str, Any]) -> AuditEntry: ...

    def entries(self, tenant: str) -> list[AuditEntry]: ...


def _seal(fields: Mapping[str, Any], seq: int, prev: str | None) -> AuditEntry:
    # Validate first, then hash the validated form: defaults filled in and numbers coerced,
    # exactly what verify() will hash again later. The fields are plain JSON types, so the
    # validated values are their own dump (one validation per entry, no dump, no copy); the
    # hash field, declared last, is taken out while the rest is hashed and put back last.
    entry: AuditEntry = _VALIDATE({**fields, "seq": seq, "prev": prev, "hash": ""})
    values = entry.__dict__
    del values["hash"]
    values["hash"] = digest(orjson.dumps(values, option=_OPTS))
    return entry


def verify_chain(entries: list[AuditEntry]) -> list[str]:
    """Problems with a tenant's chain: a changed entry, a gap or a broken link."""
    problems: list[str] = []
    prev: str | None = None
    for i, e in enumerate(entries):
        if e.seq != i:
            problems.append(f"entry #{i}: sequence number {e.seq}, expected {i} (a gap)")
        if e.prev != prev:
            problems.append(f"entry #{i}: links to {e.prev}, but the previous entry is {prev}")
        actual = entry_hash(e.model_dump())
        if actual != e.hash:
            problems.append(f"entry #{i}: its fields hash to {actual}, not to {e.hash}")
        prev = e.hash
    return problems


def verify_anchored(entries: list[AuditEntry], tenant: str, store: ArtifactStore) -> list[str]:
    """Problems with a tenant's chain against the run store: the chain's own links
    (:func:`verify_chain`); every anchor the store's ledger holds for the tenant, whose entry
    must still be in the chain with the anchored hash (an anchor of entry n covers entries 0
    to n, so a rewritten entry, a truncated or rolled-back chain, a fork all show); and every
    tool call the store's runs made live for the tenant (an ``effect`` event of kind ``tool``
    not served from a record, whose request names the tenant's principal), which must have
    its entry, naming the call's effect record (a chain rolled back past entries not yet
    anchored shows)."""
    problems = verify_chain(entries)
    ledger = ledger_of(store)
    if ledger.supported:
        problems.extend(_anchor_problems(entries, tenant, ledger.entries()))
    problems.extend(_unaudited_calls(entries, tenant, store))
    return problems


def _anchor_problems(
    entries: list[AuditEntry], tenant: str, ledger: list[tuple[int, bytes]]
) -> list[str]:
    problems: list[str] = []
    for index, data in ledger:
        try:
            anchor = parse_entry(data)
        except ValueError:
            continue  # verification of the store names an unreadable entry
        if not isinstance(anchor, AnchorEntry) or anchor.source != "tool-audit":
            continue
        if anchor.subject != tenant:
            continue
        if anchor.seq >= len(entries):
            problems.append(
                f"ledger entry #{index} anchors entry #{anchor.seq} of tenant {tenant!r}'s "
                f"chain, which holds only {len(entries)}: the chain was truncated or rolled back"
            )
        elif entries[anchor.seq].hash != anchor.hash:
            problems.append(
                f"entry #{anchor.seq}: hashes to {entries[anchor.seq].hash}, but ledger entry "
                f"#{index} anchored {anchor.hash}: the chain was rewritten or forked at or "
                "before this entry"
            )
    return problems


def _unaudited_calls(entries: list[AuditEntry], tenant: str, store: ArtifactStore) -> list[str]:
    """The tool calls recorded live for ``tenant`` in the store's runs with no entry naming
    their effect record (counted: two runs may record byte-identical calls)."""
    audited = Counter(e.result for e in entries if e.result is not None)
    problems: list[str] = []
    for run_id in store.run_ids():
        for event in chained_events(store.read_events(run_id)):
            data = event.get("data")
            if event.get("type") != "effect" or not isinstance(data, dict):
                continue
            if data.get("kind") != "tool" or "served_from" in data:
                continue  # a served call was audited when it was made
            key = data.get("record")
            if not isinstance(key, str):
                continue
            if audited[key] > 0:
                audited[key] -= 1
                continue
            if _tenant_of(store, key) != tenant:
                continue
            problems.append(
                f"run {run_id} recorded tool call {data.get('target')!r} (step "
                f"{event.get('step')!r}, effect #{data.get('index')}, record {key}) of tenant "
                f"{tenant!r}, but the chain holds no entry for it: the chain was rolled back "
                "or truncated (or the process died between recording the call and auditing it)"
            )
    return problems


def _tenant_of(store: ArtifactStore, record_key: str) -> str | None:
    """The tenant whose principal made the recorded call, or None when the record does not
    say (not the broker's, or unreadable: verification of the store names that)."""
    try:
        record = store.get_value(record_key)
        request = store.get_value(record["request"]) if isinstance(record, dict) else None
    except (TraceError, KeyError, TypeError):
        return None
    principal = request.get("principal") if isinstance(request, dict) else None
    tenant = principal.get("tenant") if isinstance(principal, dict) else None
    return tenant if isinstance(tenant, str) else None


class MemoryAuditLog:
    """Audit entries in memory (the broker's default; gone when the process ends)."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, list[AuditEntry]] = {}
        self._lock = threading.Lock()

    def append(self, fields: Mapping[str, Any]) -> AuditEntry:
        with self._lock:
            chain = self._by_tenant.setdefault(str(fields["tenant"]), [])
            entry = _seal(fields, len(chain), chain[-1].hash if chain else None)
            chain.append(entry)
            return entry

    def entries(self, tenant: str) -> list[AuditEntry]:
        with self._lock:
            return list(self._by_tenant.get(tenant, ()))

    def verify(self, tenant: str) -> list[str]:
        return verify_chain(self.entries(tenant))


class SQLiteAuditLog:
    """Audit entries in one SQLite file; appends from several processes are serialised by
    SQLite's write lock, so each tenant's chain stays gap-free."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit ("
            " tenant TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,"
            " body BLOB NOT NULL, PRIMARY KEY (tenant, seq))"
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def append(self, fields: Mapping[str, Any]) -> AuditEntry:
        tenant = str(fields["tenant"])
        with self._write() as db:
            row = db.execute(
                "SELECT seq, hash FROM audit WHERE tenant = ? ORDER BY seq DESC LIMIT 1",
                (tenant,),
            ).fetchone()
            seq, prev = (0, None) if row is None else (row[0] + 1, row[1])
            entry = _seal(fields, seq, prev)
            db.execute(
                "INSERT INTO audit (tenant, seq, hash, body) VALUES (?, ?, ?, ?)",
                (tenant, seq, entry.hash, orjson.dumps(entry.model_dump(), option=_OPTS)),
            )
        return entry

    def entries(self, tenant: str) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM audit WHERE tenant = ? ORDER BY seq", (tenant,)
            ).fetchall()
        return [AuditEntry.model_validate(orjson.loads(r[0])) for r in rows]

    def verify(self, tenant: str) -> list[str]:
        return verify_chain(self.entries(tenant))

    def close(self) -> None:
        with self._lock:
            self._db.close()
