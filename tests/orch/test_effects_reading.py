"""Reading a recorded run back (orch._effects.RunReader, EffectSource.from_run) and the
engine's hot path: what replay and resume decode, when, and that the faster paths record the
very same bytes as before (root hashes pinned from the engine before issue 17's changes)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from pydantic import BaseModel, ValidationError

import orch._scheduler as scheduler
from orch import Context, Pipeline, PipelineBuilder, RetryPolicy, agent, arun
from orch._effects import (
    EffectSource,
    RecordedEffect,
    RunReader,
    recorded_effect,
    recorded_step,
)
from orch._replay import areplay
from traces import (
    ArtifactNotFoundError,
    ArtifactStore,
    DirectoryStore,
    EffectRecord,
    ErrorInfo,
    IntegrityError,
    InvalidKeyError,
    MemoryStore,
    SQLiteStore,
    StepRecord,
    canonical_bytes,
    effect_record_bytes,
    merkle_root,
    step_record_bytes,
    verify_run,
)

# The no-op shapes are the benchmarks' (tests/benchmarks/_shapes.py), imported by name as they
# import them: the hashes pinned here are those of the pipelines the benchmarks time. Appended,
# so that no benchmark's module can shadow a module of the same name for the other tests.
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _shapes import Num, chain, noop, wide

KEY = "sha256:" + "ab" * 32


@agent(name="mapper", version="1")
async def mapper(n: Num, ctx: Context) -> Num:
    outs = await ctx.map(noop, [Num(x=i) for i in range(n.x)])
    ctx.decide(candidates=["a", "b"], chosen="a", reason="r", scores={"a": 1.5, "b": 0.25})
    return Num(x=len(outs))


@agent(name="effecty", version="1")
async def effecty(n: Num, ctx: Context) -> Num:
    async def call() -> dict[str, Any]:
        return {"v": n.x * 2, "f": 0.5}

    r = await ctx.effect("model", "m", {"x": n.x}, call, meter=lambda r: ({"in": 1}, 0.001))

    async def bad() -> dict[str, Any]:
        raise ValueError("nope")

    with contextlib.suppress(ValueError):
        await ctx.effect("tool", "t", {"x": n.x}, bad)
    return Num(x=r["v"] + ctx.rng.randrange(10))


_FLAKY = {"calls": 0}


@agent(name="flaky", version="1")
async def flaky(n: Num, ctx: Context) -> Num:
    _FLAKY["calls"] += 1
    if _FLAKY["calls"] % 2:
        raise ConnectionError("flaky")
    return n


def mixed() -> Pipeline:
    p = PipelineBuilder("mixed")
    a = p.node("a", mapper, x=p.input("x", int))
    b = p.node("b", effecty, x=a.field("x"))
    retry = RetryPolicy(max_attempts=3, retry_on=(ConnectionError,), initial_wait=0, max_wait=0)
    p.node("c", flaky, x=b.field("x"), retry=retry)
    return p.build()


# Root hashes these pipelines had before the hot path was changed (issue 17): nothing hashed
# may change, whatever the engine does faster.
PINNED = {
    "chain": "sha256:a30f8b75d329e901d017082614ce57c28aff851fb3c111fe475afa894e6fb27d",
    "wide": "sha256:f5f6c69195c115d8b6627df561210d377234bb9d54d034352ca5801dedf82f56",
    "mixed": "sha256:ea8feecc97f988e96bb2b1e5422aed12a7afb9a235a9edda78c588ba49bbf469",
}


async def _pinned_runs(store: ArtifactStore) -> dict[str, str]:
    _FLAKY["calls"] = 0
    out = {}
    for name, pipeline, x in (
        ("chain", chain("chain-50", 50), 1),
        ("wide", wide("wide-50", 50), 1),
        ("mixed", mixed(), 7),
    ):
        result = await arun(pipeline, {"x": x}, store=store, seed=5, run_id=f"run-{name}")
        assert result.ok
        out[name] = result.root_hash
    return out


async def test_root_hashes_are_the_ones_the_engine_had_before() -> None:
    assert await _pinned_runs(MemoryStore()) == PINNED


async def test_remembering_values_by_their_bytes_stores_the_same_artifacts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RunState.put_step_value skips hashing a value the run already stored: with it turned off,
    # every run stores exactly the same set of artifacts and has the same root hashes.
    remembered = MemoryStore()
    assert await _pinned_runs(remembered) == PINNED
    monkeypatch.setattr(scheduler, "_KNOWN_BYTES", -1)
    plain = MemoryStore()
    assert await _pinned_runs(plain) == PINNED
    assert set(remembered.keys()) == set(plain.keys())


def test_merkle_root_of_a_generator_is_that_of_the_list() -> None:
    leaves = [f"leaf {i}".encode() for i in range(37)]
    assert merkle_root(leaf for leaf in leaves) == merkle_root(leaves)
    assert merkle_root(iter(())) == merkle_root([])


# -- decoding records ----------------------------------------------------------------------


def _step_bytes(**change: Any) -> bytes:
    fields: dict[str, Any] = {
        "step_id": "a/0",
        "node": "a",
        "parent": "a",
        "agent": {"name": "noop", "version": "1", "config_hash": KEY},
        "input": KEY,
        "output": KEY,
        "effects": [KEY],
        "decisions": [],
        "children": ["a/0/0"],
        "status": "ok",
        "error": None,
        "reason": None,
        "logical_time": 2,
    }
    fields.update(change)
    return step_record_bytes(**fields)


def test_a_step_record_decodes_to_the_fields_replay_and_resume_read() -> None:
    data = _step_bytes()
    rec = StepRecord.model_validate_json(data)
    step = recorded_step(data)
    assert (step.step_id, step.status, step.output) == (rec.step_id, rec.status, rec.output)
    assert (list(step.effects), list(step.children)) == (rec.effects, rec.children)


def test_a_step_record_not_in_the_engines_form_gets_the_full_check() -> None:
    raw = orjson.loads(_step_bytes())
    raw["effects"] = [1, 2]  # not keys
    with pytest.raises(ValidationError):
        recorded_step(orjson.dumps(raw))
    raw = orjson.loads(_step_bytes())
    raw["status"] = "exploded"
    with pytest.raises(ValidationError):
        recorded_step(orjson.dumps(raw))


def _effect_bytes(**change: Any) -> bytes:
    fields: dict[str, Any] = {
        "step_id": "a",
        "index": 3,
        "kind": "model",
        "target": "m",
        "request": KEY,
        "response": KEY,
        "status": "ok",
        "error": None,
        "usage": {"input_tokens": 4},
        "cost_usd": 0.25,
    }
    fields.update(change)
    return effect_record_bytes(**fields)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"status": "failed", "response": None, "error": ErrorInfo(type="E", message="m")},
        {"usage": {}, "cost_usd": None},
    ],
)
def test_an_effect_record_decodes_to_the_models_fields(change: dict[str, Any]) -> None:
    data = _effect_bytes(**change)
    assert recorded_effect(data) == RecordedEffect.of(EffectRecord.model_validate_json(data))


def test_an_effect_record_not_in_the_engines_form_is_validated_by_the_model() -> None:
    raw = orjson.loads(_effect_bytes())
    raw["cost_usd"] = 1  # an int: the model makes it a float, as it always did
    assert recorded_effect(orjson.dumps(raw)).cost_usd == 1.0
    raw["index"] = "three"
    with pytest.raises(ValidationError):
        recorded_effect(orjson.dumps(raw))
    raw = orjson.loads(_effect_bytes())
    raw["surprise"] = True  # a field the schema forbids
    with pytest.raises(ValidationError):
        recorded_effect(orjson.dumps(raw))


# -- get_many ------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "dir", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "dir":
        return DirectoryStore(tmp_path / "store")
    return SQLiteStore(tmp_path / "store.db")


def test_get_many_is_get_for_each_key_in_order(store: ArtifactStore) -> None:
    keys = [store.put(f"blob {i}".encode()) for i in range(5)]
    asked = [keys[3], keys[0], keys[3], keys[4]]
    assert store.get_many(asked) == [store.get(k) for k in asked]
    assert store.get_many([]) == []
    with pytest.raises(ArtifactNotFoundError):
        store.get_many([keys[0], "sha256:" + "0" * 64])
    with pytest.raises(InvalidKeyError):
        store.get_many([keys[0], "../../etc/passwd"])


def test_get_many_names_a_damaged_blob() -> None:
    store = MemoryStore()
    good, bad = store.put(b"good"), store.put(b"bad")
    store._tamper(bad, b"changed")
    with pytest.raises(IntegrityError):
        store.get_many([good, bad])


# -- what replay and resume read, and when -------------------------------------------------


class Doc(BaseModel):
    text: str


_CALLS: list[str] = []
_STOP_AT_LAST = {"on": False}


async def _model(text: str) -> dict[str, str]:
    _CALLS.append(text)
    return {"text": text.upper()}


@agent(name="llm", version="1")
async def llm(d: Doc, ctx: Context) -> Doc:
    out = await ctx.effect("model", "m", {"text": d.text}, lambda: _model(d.text))
    return Doc(text=out["text"] + "!")


@agent(name="last-llm", version="1")
async def last_llm(d: Doc, ctx: Context) -> Doc:
    out = await ctx.effect("model", "m", {"text": d.text}, lambda: _model(d.text))
    if _STOP_AT_LAST["on"]:
        raise RuntimeError("stopped at the last node")
    return Doc(text=out["text"])


def llm_chain(n: int) -> Pipeline:
    p = PipelineBuilder("llm-chain")
    prev = p.node("s0", llm, text=p.input("text", str))
    for i in range(1, n - 1):
        prev = p.node(f"s{i}", llm, text=prev.field("text"))
    p.node(f"s{n - 1}", last_llm, text=prev.field("text"))
    return p.build()


def _effect_key(store: ArtifactStore, run_id: str, step: str) -> str:
    for line in store.read_events(run_id):
        event = orjson.loads(line)
        if event["type"] == "effect" and event.get("step") == step:
            return str(event["data"]["record"])
    raise AssertionError(f"no effect of step {step} in run {run_id}")


async def _failed_at_last(store: ArtifactStore, pipeline: Pipeline) -> str:
    _STOP_AT_LAST["on"] = True
    try:
        failed = await arun(pipeline, {"text": "hi"}, store=store)
    finally:
        _STOP_AT_LAST["on"] = False
    assert failed.status == "failed"
    return failed.run_id


async def test_a_resume_never_reads_the_effects_of_the_steps_it_takes_from_the_record() -> None:
    store, pipeline = MemoryStore(), llm_chain(4)
    uninterrupted = await arun(pipeline, {"text": "hi"}, store=MemoryStore())
    failed = await _failed_at_last(store, pipeline)
    # Damage the effect record of a step that finished: the resume takes that step whole and
    # never needs its effects.
    store._tamper(_effect_key(store, failed, "s1"), b"damaged")
    _CALLS.clear()
    resumed = await arun(pipeline, store=store, resume=failed)
    assert resumed.ok and resumed.root_hash == uninterrupted.root_hash
    assert _CALLS == []  # the last step's effect was served from the record, not made again


async def test_a_damaged_effect_of_a_step_that_will_run_stops_the_resume_before_it_starts() -> None:
    store, pipeline = MemoryStore(), llm_chain(4)
    failed = await _failed_at_last(store, pipeline)
    store._tamper(_effect_key(store, failed, "s3"), b"damaged")
    runs_before = store.run_ids()
    with pytest.raises(IntegrityError):
        await arun(pipeline, store=store, resume=failed)
    assert store.run_ids() == runs_before  # nothing was started


async def test_a_damaged_effect_record_stops_a_replay_before_it_writes_anything() -> None:
    store, pipeline = MemoryStore(), llm_chain(3)
    run = await arun(pipeline, {"text": "hi"}, store=store)
    store._tamper(_effect_key(store, run.run_id, "s1"), b"damaged")
    runs_before = store.run_ids()
    with pytest.raises(IntegrityError):
        await areplay(pipeline, run.run_id, store)
    assert store.run_ids() == runs_before


async def test_a_replay_of_a_reader_decodes_each_record_once() -> None:
    store, pipeline = MemoryStore(), llm_chain(5)
    run = await arun(pipeline, {"text": "hi"}, store=store)
    reader = RunReader(store)
    source = EffectSource.from_run(store, run.run_id, reader=reader)
    assert len(source) == 5
    assert reader.effect(_effect_key(store, run.run_id, "s2")) is reader.effect(
        _effect_key(store, run.run_id, "s2")
    )
    report = await areplay(pipeline, run.run_id, store)
    assert report.clean
    assert verify_run(store, report.result.run_id).ok


async def test_a_source_decodes_a_step_only_when_it_is_asked_about() -> None:
    store, pipeline = MemoryStore(), llm_chain(3)
    run = await arun(pipeline, {"text": "hi"}, store=store)
    source = EffectSource.from_run(store, run.run_id)
    store._tamper(_effect_key(store, run.run_id, "s0"), b"damaged")
    slot = source.get("s1", 0)  # s0's damaged record is not read for s1
    assert slot is not None and slot[1].step_id == "s1" and source.count("s1") == 1
    with pytest.raises(IntegrityError):
        source.get("s0", 0)


async def test_a_lineage_serves_each_effect_from_the_first_run_that_finished_it() -> None:
    store, pipeline = MemoryStore(), llm_chain(3)
    first = await _failed_at_last(store, pipeline)
    second = await arun(pipeline, store=store, resume=first)
    assert second.ok
    reader = RunReader(store)
    merged = EffectSource.merged(
        first,
        [EffectSource.from_run(store, r, reader=reader) for r in (first, second.run_id)],
    )
    assert merged.origin("s2", 0) == first  # made by the first run, served to the second
    assert merged.origin("s0", 0) == first
    assert len(merged) == 3


def test_canonical_bytes_of_a_model_with_its_own_model_dump_uses_it() -> None:
    class Shouty(BaseModel):
        x: int

        def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
            return {"x": self.x * 10}

    # The fast path is for models that dump with BaseModel's own model_dump only.
    assert canonical_bytes(Shouty(x=2)) == b'{"x":20}'
    assert canonical_bytes(Num(x=2)) == b'{"x":2}'


if __name__ == "__main__":  # pragma: no cover - a quick look by hand
    anyio.run(test_root_hashes_are_the_ones_the_engine_had_before)
