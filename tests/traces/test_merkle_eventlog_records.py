"""Merkle roots, the hash-chained event log, and the record models."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from traces import (
    AgentRef,
    EventLog,
    MemoryStore,
    RunHead,
    RunRecord,
    StepRecord,
    canonical_bytes,
    digest,
    merkle_root,
    steps_root,
)
from traces._eventlog import event_body_hash
from traces._merkle import EMPTY_ROOT
from traces._records import step_leaf


def _leaf(b: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + b).digest()


def test_merkle_small_trees() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([b"a"]) == "sha256:" + _leaf(b"a").hex()
    two = hashlib.sha256(b"\x01" + _leaf(b"a") + _leaf(b"b")).digest()
    assert merkle_root([b"a", b"b"]) == "sha256:" + two.hex()
    # an odd node is carried up unchanged
    three = hashlib.sha256(b"\x01" + two + _leaf(b"c")).digest()
    assert merkle_root([b"a", b"b", b"c"]) == "sha256:" + three.hex()
    assert merkle_root([b"b", b"a"]) != merkle_root([b"a", b"b"])
    # domain separation: an inner node cannot pose as a leaf
    assert merkle_root([_leaf(b"a") + _leaf(b"b")]) != merkle_root([b"a", b"b"])


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_changing_any_leaf_changes_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    changed = list(leaves)
    changed[i] = leaves[i] + b"!"
    assert merkle_root(changed) != merkle_root(leaves)
    assert merkle_root([*leaves, b""]) != merkle_root(leaves)


def test_step_leaf_binds_id_and_key() -> None:
    k = digest(b"x")
    assert step_leaf("a", k) == canonical_bytes(["a", k])
    assert steps_root([("a", k), ("b", k)]) != steps_root([("b", k), ("a", k)])


def test_event_log_chain() -> None:
    store = MemoryStore()
    ticks = iter(range(100))
    log = EventLog(store, "run-1", clock=lambda: float(next(ticks)))
    h0 = log.emit("run_start", seed=1)
    h1 = log.emit("step_start", "a")
    h2 = log.emit("step_end", "a", status="ok")
    lines = store.read_events("run-1")
    events = [orjson.loads(line) for line in lines]
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert [e["prev"] for e in events] == [None, h0, h1]
    assert [e["hash"] for e in events] == [h0, h1, h2]
    assert all(
        line.endswith(b'"hash":"' + e["hash"].encode() + b'"}')
        for line, e in zip(lines, events, strict=True)
    )
    for e in events:
        assert event_body_hash(e) == e["hash"]
    assert events[2]["data"] == {"status": "ok"} and events[2]["t"] == 2.0
    edited = dict(events[2], data={"status": "failed"})
    assert event_body_hash(edited) != edited["hash"]
    assert (log.count, log.head) == (3, h2)


def test_records_are_frozen_and_strict() -> None:
    ref = AgentRef(name="a", version="1", config_hash=digest(b"{}"))
    rec = StepRecord(step_id="s", node="s", agent=ref, status="ok", logical_time=0)
    with pytest.raises(ValidationError):
        rec.status = "failed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        StepRecord(step_id="s", node="s", agent=ref, status="weird", logical_time=0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        StepRecord.model_validate(rec.model_dump() | {"surprise": 1})


def test_run_record_root_hash() -> None:
    steps = [("a", digest(b"1")), ("b", digest(b"2"))]
    record = RunRecord(
        pipeline="p",
        spec_hash=digest(b"spec"),
        inputs={"x": digest(b"1")},
        seed=0,
        steps=steps,
        steps_root=steps_root(steps),
        outputs={},
        status="ok",
    )
    assert record.root_hash() == digest(canonical_bytes(record))
    assert record.model_copy(update={"seed": 1}).root_hash() != record.root_hash()


def test_run_head_seal_detects_any_edit() -> None:
    head = RunHead(
        run_id="r", pipeline="p", spec_hash=digest(b"s"), seed=0, status="running", started_at=1.0
    ).sealed()
    assert head.seal_ok()
    for field, value in [("status", "ok"), ("started_at", 2.0), ("host", "elsewhere"), ("seed", 9)]:
        assert not head.model_copy(update={field: value}).seal_ok(), field
