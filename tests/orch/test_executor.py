"""Batches through the local executor: run ids, idempotent re-submits, resume, feedback order."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents.models import ChatRequest, ChatResponse, ModelHub, ModelInfo
from orch import (
    BatchInputError,
    BatchSpec,
    ExecutorError,
    ItemResult,
    LocalExecutor,
    apply_in_order,
    arun,
)
from orch._loader import load_pipeline, load_services
from orch.batch._result import in_input_order
from orch.batch._spec import absolute_store_location, item_seed
from orch.batch.dask import default_chunk_size, probe_worker, run_chunk
from routers._ema import EMAState, Observation, apply_feedback
from traces import DirectoryStore, MemoryStore, RunHead, StoreLocationError, verify_run

FIXTURES = Path(__file__).parents[1] / "fixtures"
BATCH = str(FIXTURES / "batch_pipelines.py")
FAILING = str(FIXTURES / "pipelines.py") + ":failing"


def questions(n: int) -> list[dict[str, Any]]:
    return [{"question": f"What is {i} + {i}?"} for i in range(n)]


def calls(calls_dir: Path) -> dict[str, int]:
    """Request hash -> how many times it reached the model (see batch_pipelines.py)."""
    return {p.name: len(p.read_text().split()) for p in calls_dir.iterdir()}


async def test_local_batch_gives_the_runs_arun_gives(tmp_path: Path) -> None:
    spec = BatchSpec.create(BATCH, questions(12), store=str(tmp_path / "store"), seed=7)
    result = await LocalExecutor(parallel=4).run_batch(spec)
    assert result.ok and [r.index for r in result.items] == list(range(12))
    pipeline = load_pipeline(BATCH)
    reference = MemoryStore()
    for i, r in enumerate(result.items):
        assert r.run_id == f"{spec.batch_id}-{i:05d}"
        assert (r.attempts, r.retried, r.from_store) == (1, False, False)
        direct = await arun(
            pipeline,
            questions(12)[i],
            store=reference,
            seed=item_seed(7, i),
            services=load_services(BATCH),
        )
        assert r.root_hash == direct.root_hash
        assert r.outputs == {"graded": direct.outputs["graded"].model_dump(mode="json")}
    store = DirectoryStore(tmp_path / "store")
    assert all(verify_run(store, r.run_id).ok for r in result.items)


def test_run_ids_and_seeds_are_derived_from_the_batch(tmp_path: Path) -> None:
    a = BatchSpec.create(BATCH, questions(3), store=str(tmp_path / "s"))
    b = BatchSpec.create(BATCH, questions(3), store=str(tmp_path / "other"))
    assert a.batch_id == b.batch_id  # the store is where runs go, not what they are
    assert [i.run_id for i in a.items] == [f"{a.batch_id}-{i:05d}" for i in range(3)]
    assert a.seeds == [item_seed(0, i) for i in range(3)]
    assert BatchSpec.create(BATCH, questions(3), seed=1).batch_id != a.batch_id
    assert BatchSpec.create(BATCH, questions(4)).batch_id != a.batch_id
    named = BatchSpec.create(BATCH, questions(3), batch_id="audit-7", seeds=[5, 6, 7])
    assert [i.run_id for i in named.items] == ["audit-7-00000", "audit-7-00001", "audit-7-00002"]
    assert named.seeds == [5, 6, 7]


def test_bad_batches_are_refused_with_the_fix() -> None:
    with pytest.raises(BatchInputError, match=r"input #1: .*unknown input") as info:
        BatchSpec.create(BATCH, [{"question": "a"}, {"questoin": "b"}])
    assert info.value.index == 1
    with pytest.raises(BatchInputError, match="not a mapping"):
        BatchSpec.create(BATCH, [["question", "a"]])  # type: ignore[list-item]
    with pytest.raises(ExecutorError, match="no inputs"):
        BatchSpec.create(BATCH, [])
    with pytest.raises(ExecutorError, match="2 inputs but 1 seeds"):
        BatchSpec.create(BATCH, questions(2), seeds=[1])
    with pytest.raises(ExecutorError, match="batch id 'a/b' cannot name runs"):
        BatchSpec.create(BATCH, questions(2), batch_id="a/b")


def test_store_locations_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert absolute_store_location(None) == str(tmp_path / ".orch")
    assert absolute_store_location("runs") == str(tmp_path / "runs")
    assert absolute_store_location("sqlite:runs.db") == f"sqlite://{tmp_path / 'runs.db'}"
    assert absolute_store_location("sqlite:///abs/x.db") == "sqlite:///abs/x.db"
    assert absolute_store_location("file://rel") == f"file://{tmp_path / 'rel'}"
    assert absolute_store_location("postgresql://db/orch") == "postgresql://db/orch"
    assert absolute_store_location("memory:") == "memory:"


async def test_resubmitting_a_batch_finds_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_BATCH_CALLS_DIR", str(tmp_path / "calls"))
    (tmp_path / "calls").mkdir()
    spec = BatchSpec.create(BATCH, questions(6), store=str(tmp_path / "store"))
    first = await LocalExecutor(parallel=3).run_batch(spec)
    made = calls(tmp_path / "calls")
    again = await LocalExecutor(parallel=3).run_batch(spec)
    assert calls(tmp_path / "calls") == made  # nothing reached the model the second time
    assert all(n == 1 for n in made.values()) and len(made) == 12
    assert [r.root_hash for r in again.items] == [r.root_hash for r in first.items]
    assert [r.outputs for r in again.items] == [r.outputs for r in first.items]
    assert all(r.from_store and r.attempts == 1 for r in again.items)
    assert again.summary()["from_store"] == 6
    assert DirectoryStore(tmp_path / "store").run_ids() == [r.run_id for r in first.items]


class _HeldJudge:
    """A client that holds every judge call until cancelled, counting the calls it holds."""

    provider = "scripted"

    def __init__(self, inner: Any, expected: int) -> None:
        self.inner = inner
        self.expected = expected
        self.held = 0
        self.all_held = anyio.Event()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        if model.id == "judge":
            self.held += 1
            if self.held == self.expected:
                self.all_held.set()
            await anyio.sleep_forever()
        response: ChatResponse = await self.inner.complete(request, model)
        return response


async def _interrupt(spec: BatchSpec, n: int) -> None:
    """Run ``spec`` until every run waits for its judge, then cancel it: each run has its
    'ask' effect and steps recorded, and ends cancelled (what a stopped process leaves)."""
    hub = load_services(BATCH)["models"]
    held = _HeldJudge(hub.client("scripted"), expected=n)
    services = {"models": ModelHub(hub.registry, clients={"scripted": held})}
    async with anyio.create_task_group() as tg:
        tg.start_soon(LocalExecutor(parallel=n, services=services).run_batch, spec)
        await held.all_held.wait()
        tg.cancel_scope.cancel()


async def test_an_interrupted_batch_resumes_without_reissuing_effects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_BATCH_CALLS_DIR", str(tmp_path / "calls"))
    (tmp_path / "calls").mkdir()
    n = 5
    spec = BatchSpec.create(BATCH, questions(n), store=str(tmp_path / "store"))
    await _interrupt(spec, n)
    store = DirectoryStore(tmp_path / "store")
    heads = [RunHead.model_validate_json(store.read_run_head(i.run_id) or b"") for i in spec.items]
    assert [h.status for h in heads] == ["cancelled"] * n
    assert len(calls(tmp_path / "calls")) == n  # the asks: no judge call reached the model
    await _interrupt(spec, n)  # the resumed attempts are interrupted too
    assert len(calls(tmp_path / "calls")) == n  # ... and asked nothing again

    result = await LocalExecutor(parallel=n).run_batch(spec)
    assert result.ok
    for item, r in zip(spec.items, result.items, strict=True):
        assert (r.run_id, r.attempts, r.resumed_from) == (
            f"{item.run_id}.r3",
            3,
            f"{item.run_id}.r2",
        )
        assert verify_run(store, r.run_id).ok
    assert result.summary()["retried"] == [f"{i.run_id}.r3" for i in spec.items]
    made = calls(tmp_path / "calls")
    assert len(made) == 2 * n and all(count == 1 for count in made.values())
    # ... and the resumed runs are the runs an uninterrupted batch makes.
    clean = await LocalExecutor(parallel=n, store=MemoryStore()).run_batch(spec)
    assert [r.root_hash for r in result.items] == [r.root_hash for r in clean.items]
    again = await LocalExecutor().run_batch(spec)  # resubmitted once more: found, not rerun
    assert [(r.run_id, r.from_store, r.attempts) for r in again.items] == [
        (r.run_id, True, 3) for r in result.items
    ]


async def test_a_failed_run_is_a_result_not_a_retry(tmp_path: Path) -> None:
    spec = BatchSpec.create(FAILING, [{"x": 1}, {"x": 2}], store=str(tmp_path / "store"))
    result = await LocalExecutor().run_batch(spec)
    assert [r.status for r in result.items] == ["failed", "failed"]
    assert result.items[0].error is not None and "cannot handle 1" in result.items[0].error
    assert not result.ok and result.summary()["failed_runs"] == [r.run_id for r in result.items]
    again = await LocalExecutor().run_batch(spec)
    assert [(r.status, r.from_store, r.root_hash) for r in again.items] == [
        ("failed", True, r.root_hash) for r in result.items
    ]


async def test_a_run_of_something_else_under_an_items_id_is_not_taken(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "store")
    spec = BatchSpec.create(BATCH, questions(2), store=str(tmp_path / "store"))
    pipeline = load_pipeline(BATCH)
    await arun(
        pipeline,
        {"question": "something else"},
        store=store,
        run_id=spec.items[1].run_id,
        services=load_services(BATCH),
    )
    result = await LocalExecutor(store=store).run_batch(spec)
    assert result.items[0].status == "ok"
    bad = result.items[1]
    assert bad.status == "error" and bad.root_hash is None
    assert bad.error is not None and "was not made for input #1" in bad.error
    assert "new id" in bad.error


async def test_workers_refuse_other_pipeline_code(tmp_path: Path) -> None:
    spec = BatchSpec.create(BATCH, questions(2), store=str(tmp_path / "store"))
    stale = dataclasses.replace(spec, spec_hash="sha256:" + "0" * 64)
    with pytest.raises(ExecutorError, match=r"spec hash .* fix: deploy the same pipeline code"):
        await LocalExecutor().run_batch(stale)
    # The Dask worker's task and probe (called here, in-process) say the same, per item.
    results = (await run_chunk(stale.header(), list(stale.items), 2)).items
    assert [r.status for r in results] == ["error", "error"]
    assert all(r.error is not None and "deploy the same" in r.error for r in results)
    problem = await probe_worker(stale.header())
    assert problem is not None and "spec hash" in problem
    assert await probe_worker(spec.header()) is None
    ok = await run_chunk(spec.header(), list(spec.items), 2)
    assert [r.status for r in ok.items] == ["ok", "ok"] and ok.notices == []


class _StoreThatGoesAway(MemoryStore):
    """A memory store that, once ``gone`` is set, fails every call as a store whose server
    stays unreachable after its retries does."""

    gone = False

    def _check(self) -> None:
        if self.gone:
            raise StoreLocationError("store test:gone: could not reach it; fix: bring it back")

    def put(self, data: bytes) -> str:
        self._check()
        return super().put(data)

    def append_event(self, run_id: str, line: bytes) -> None:
        self._check()
        super().append_event(run_id, line)

    def write_run_head(self, run_id: str, data: bytes) -> None:
        self._check()
        super().write_run_head(run_id, data)

    def read_run_head(self, run_id: str) -> bytes | None:
        self._check()
        return super().read_run_head(run_id)

    def read_claim(self, name: str) -> bytes | None:
        self._check()
        return super().read_claim(name)

    def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
        self._check()
        return super().swap_claim(name, expected, new)


async def test_a_store_gone_mid_batch_fails_what_it_hits_and_starts_nothing_more(
    tmp_path: Path,
) -> None:
    # The PostgreSQL version, with a real server going away: test_executor_pg.py.
    store = _StoreThatGoesAway()
    spec = BatchSpec.create(BATCH, questions(10), store="memory:")

    def go_away(done: int, _total: int) -> None:
        store.gone = store.gone or done == 2

    result = await LocalExecutor(parallel=3, store=store).run_batch(spec, progress=go_away)
    assert [r.index for r in result.items] == list(range(10))  # every input has its result
    ok = [r for r in result.items if r.status == "ok"]
    # Two ended before the store went; the third in flight may just have made it.
    assert len(ok) in (2, 3) and all(r.status == "error" for r in result.items if r not in ok)
    hit = [r for r in result.items if r.error and r.error.startswith("StoreLocationError")]
    rest = [r for r in result.items if r.error and r.error.startswith("not started")]
    # The runs in flight failed inside their task groups: reported as the store's error.
    assert hit and len(hit) + len(rest) == 10 - len(ok), [r.error for r in result.items]
    assert all("store test:gone: could not reach it" in (r.error or "") for r in hit + rest)
    assert all(
        "fix: run the batch again once the store is reachable" in (r.error or "") for r in rest
    )
    assert result.store_reconnects is None  # a memory store has no connection to count


def test_chunks_keep_parallel_runs_in_flight_and_spread_the_work() -> None:
    assert default_chunk_size(1000, 1, 16) == 256  # two tasks for the one slot, capped
    assert default_chunk_size(1000, 4, 16) == 125  # two tasks a slot, each > parallel
    assert default_chunk_size(20, 1, 16) == 20  # too small for two: one task, 16 in flight
    assert default_chunk_size(30, 2, 4) == 8
    assert default_chunk_size(3, 8, 16) == 1
    assert default_chunk_size(10**6, 4, 16) == 256  # huge batches: more, bounded tasks


def _observe(state: EMAState, r: ItemResult) -> EMAState:
    graded = r.outputs["graded"]
    return apply_feedback(state, [Observation(agent=graded["model"], quality=graded["score"])])


async def test_feedback_is_folded_in_input_order_whatever_order_runs_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Latencies drawn per request make the runs end out of input order.
    monkeypatch.setenv("ORCH_BATCH_LATENCY_MS", "0,20")
    spec = BatchSpec.create(BATCH, questions(24), store="memory:")
    result = await LocalExecutor(parallel=8, store=MemoryStore()).run_batch(spec)
    assert [r.index for r in result.items] == list(range(24))
    expected = result.apply_in_order(_observe, EMAState())
    rng = random.Random(0)
    naive = set()
    for _ in range(20):
        arrived = list(result.items)
        rng.shuffle(arrived)  # the order workers might report them in
        assert apply_in_order(arrived, _observe, EMAState()).version == expected.version
        state = EMAState()
        for r in arrived:
            state = _observe(state, r)
        naive.add(state.version)
    assert len(naive) > 1  # folding as they arrive would not be deterministic
    assert [r.index for r in in_input_order(reversed(result.items))] == list(range(24))
    with pytest.raises(ExecutorError, match="input #3 twice"):
        in_input_order([*result.items[:4], result.items[3]])
    with pytest.raises(ExecutorError, match="input #2 is missing"):
        in_input_order(result.items[:2] + result.items[3:])


def test_the_executor_api_is_exported_from_orch_and_orch_batch() -> None:
    import orch.batch

    for name in ("Executor", "LocalExecutor", "BatchSpec", "BatchResult", "apply_in_order"):
        assert name in orch.__all__ and name in orch.batch.__all__
        assert getattr(orch, name) is getattr(orch.batch, name)
    assert issubclass(orch.BatchInputError, orch.ExecutorError)
    assert issubclass(orch.ExecutorError, orch.OrchError)


async def test_services_by_module_name_and_with_parameters(tmp_path: Path) -> None:
    from orch.batch._executor import load_batch_services
    from orch.batch._spec import is_module_target
    from orch.errors import PipelineLoadError

    assert is_module_target("batch_pipelines:services")
    assert is_module_target("routers.eval.eval_services:services")
    assert not is_module_target("svc.py:services") and not is_module_target("svc")
    assert not is_module_target("dir/svc:services")
    by_file = BatchSpec.create(BATCH, questions(4), store=str(tmp_path / "a"), services=BATCH)
    # tests/fixtures is on sys.path, so the same file imports as the module batch_pipelines.
    by_name = BatchSpec.create(
        BATCH, questions(4), store=str(tmp_path / "b"), services="batch_pipelines:services"
    )
    assert by_file.services == f"{BATCH}:services"
    assert by_name.services == "batch_pipelines:services"
    assert by_name.batch_id == by_file.batch_id  # services are code, like the pipeline
    one = await LocalExecutor(4).run_batch(by_file)
    two = await LocalExecutor(4).run_batch(by_name)
    assert [r.root_hash for r in one.items] == [r.root_hash for r in two.items]
    with_params = BatchSpec.create(
        BATCH,
        questions(4),
        store=str(tmp_path / "c"),
        services="batch_pipelines:services",
        services_params={"unused": 1},
    )
    assert with_params.batch_id != by_file.batch_id  # they change what runs receive
    with pytest.raises(PipelineLoadError, match=r"unused=1 failed: .*fix: give the param"):
        load_batch_services(with_params.header())
    missing = dataclasses.replace(by_name, services="no_such_module:services")
    with pytest.raises(PipelineLoadError, match="cannot import services module 'no_such_module'"):
        load_batch_services(missing.header())
    not_a_function = dataclasses.replace(
        with_params, services="batch_pipelines:MODELS", services_params={"a": 1}
    )
    with pytest.raises(PipelineLoadError, match="is not a function, so it cannot take"):
        load_batch_services(not_a_function.header())
    a_list = dataclasses.replace(by_name, services="batch_pipelines:MODELS")
    with pytest.raises(PipelineLoadError, match="'MODELS' in 'batch_pipelines' is a list; fix"):
        load_batch_services(a_list.header())
    (tmp_path / "bad_services.py").write_text("services = ['not', 'a', 'mapping']\n")
    with pytest.raises(PipelineLoadError, match=r"'services' in .*bad_services.py' is a list"):
        load_services(str(tmp_path / "bad_services.py"))
