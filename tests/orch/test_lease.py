"""Leases on batch inputs: one holder at a time, a stale one taken over, a lost one cancels."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
import pytest
from batch_checks import BATCH, questions

from orch import BatchSpec
from orch.lease import LeaseLostError, holding, take
from traces import MemoryStore, RunHead, verify_run
from traces.open import open_store

ROOT = Path(__file__).parents[2]


async def test_a_second_taker_waits_until_the_holder_releases() -> None:
    store = MemoryStore()
    order: list[str] = []

    async def worker(name: str, hold: float) -> None:
        async with holding(store, "in-1", seconds=5):
            order.append(f"{name} in")
            await anyio.sleep(hold)
            order.append(f"{name} out")

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "a", 0.3)
        await anyio.sleep(0.05)
        tg.start_soon(worker, "b", 0)
    assert order == ["a in", "a out", "b in", "b out"]  # never both inside
    assert store.read_claim("in-1") is None  # released


async def test_a_renewed_lease_is_kept_and_a_stale_one_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    taken: list[float] = []

    async def second() -> None:
        started = anyio.current_time()
        lease = await take(store, "in-1", seconds=0.3)
        assert lease is not None
        taken.append(anyio.current_time() - started)
        lease.release()

    # A live holder renews every 0.1 s: a waiter does not take over while it lives, though
    # the holder works for four lease times.
    async with anyio.create_task_group() as tg:

        async def holder() -> None:
            async with holding(store, "in-1", seconds=0.3):
                await anyio.sleep(1.2)

        tg.start_soon(holder)
        await anyio.sleep(0.05)
        tg.start_soon(second)
    assert taken and taken[0] >= 1.0
    # A dead holder's claim (never renewed) is taken over after its lease time.
    dead = orjson.dumps({"holder": "host pid 1 dead", "seconds": 0.3, "seq": 0})
    assert store.swap_claim("in-2", None, dead)
    with caplog.at_level(logging.WARNING, logger="orch.lease"):
        started = anyio.current_time()
        lease = await take(store, "in-2", seconds=5)
    assert lease is not None and lease.took_over == "host pid 1 dead"
    assert anyio.current_time() - started >= 0.3
    assert "took over the lease on in-2 from host pid 1 dead" in caplog.text
    # An unreadable claim counts as stale at once.
    assert store.swap_claim("in-3", None, b"garbage")
    assert await take(store, "in-3") is not None


async def test_a_lease_taken_over_cancels_the_work_and_says_so() -> None:
    store = MemoryStore()
    reached_end = False

    async def work() -> None:
        nonlocal reached_end
        async with holding(store, "in-1", seconds=0.3) as lease:
            assert lease is not None
            # Another process, finding this one's claim stale, takes it over.
            assert store.swap_claim("in-1", lease.document, b'{"holder": "other"}')
            await anyio.sleep(5)  # cancelled at the next renewal, 0.1 s in
            reached_end = True

    with pytest.raises(LeaseLostError, match="another process took over the lease on in-1"):
        await work()
    assert not reached_end
    assert store.read_claim("in-1") == b'{"holder": "other"}'  # not released: not ours


async def test_a_store_without_claims_runs_without_leases_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Plain(MemoryStore):
        supports_claims = False

    store = Plain()
    store.location = "plain-test-store"
    with caplog.at_level(logging.WARNING, logger="orch.lease"):
        async with holding(store, "in-1") as lease:
            assert lease is None
        async with holding(store, "in-2") as lease:
            assert lease is None
    assert caplog.text.count("keeps no claims") == 1


def _finished(store: str) -> set[str]:
    with open_store(store) as st:
        heads = [st.read_run_head(r) for r in st.run_ids()]
    return {h.run_id for raw in heads if raw and (h := RunHead.model_validate_json(raw)).root_hash}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "directory"])
def test_the_same_batch_submitted_again_while_it_runs_shares_it_and_runs_nothing_twice(
    kind: str, tmp_path: Path
) -> None:
    """A second ``orch batch`` of the same batch and store while the first holds eight runs
    half done: it runs the inputs nobody holds, then waits for the first's eight instead of
    taking their unfinished runs for interrupted ones. Every input has exactly one run, made
    by one of the two; each effect reached the model once; both report the same root hashes."""
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(orjson.dumps(q).decode() + "\n" for q in questions(24)))
    store = f"sqlite:///{tmp_path / 'runs.db'}" if kind == "sqlite" else str(tmp_path / "runs")
    calls, gate = tmp_path / "calls", tmp_path / "gate"
    calls.mkdir()
    env = {
        **os.environ,
        "ORCH_BATCH_LATENCY_MS": "5,20",
        "ORCH_BATCH_CALLS_DIR": str(calls),
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-c", "from orch.cli import main; main()", "batch", BATCH]
    argv += ["--inputs", str(inputs), "--store", store, "--parallel", "8", "--json"]

    def start(extra: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def wait_for(what: str, done: Callable[[], bool]) -> None:
        # Polled: the state is in other processes' files. A guard, not a measurement.
        deadline = time.monotonic() + 120
        while not done():
            assert first.poll() is None and time.monotonic() < deadline, what
            time.sleep(0.05)

    first = start({"ORCH_BATCH_GATE": str(gate)})  # its judge calls wait for the gate
    wait_for("the first never started", lambda: len(list(calls.iterdir())) >= 8)
    second = start({})
    rest = {f"{batch_id_of(inputs)}-{i:05d}" for i in range(8, 24)}
    wait_for("the second did not run the other inputs", lambda: rest <= _finished(store))
    assert second.poll() is None, "the second did not wait for the inputs the first holds"
    gate.touch()
    outs = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        outs.append(orjson.loads(out))
    a, b = (o["runs"] for o in outs)
    assert [r["root_hash"] for r in a] == [r["root_hash"] for r in b]
    assert all(r["attempts"] == 1 for r in a + b)  # nothing was taken for interrupted
    # The first made the eight it held; the second the sixteen nobody held, and it found the
    # first's eight finished (after waiting for them); the first found the second's.
    assert [not r["from_store"] for r in a] == [True] * 8 + [False] * 16
    assert [not r["from_store"] for r in b] == [False] * 8 + [True] * 16
    with open_store(store) as st:
        assert st.run_ids() == sorted(r["run_id"] for r in a)  # one run per input, no .r2
        assert all(verify_run(st, r["run_id"]).ok for r in a)
        assert all(st.read_claim(r["run_id"]) is None for r in a)
    reached = {p.name: p.read_text().split() for p in calls.iterdir()}
    assert len(reached) == 48 and all(len(pids) == 1 for pids in reached.values())


def batch_id_of(inputs: Path) -> str:
    lines = [orjson.loads(line) for line in inputs.read_text().splitlines()]
    return BatchSpec.create(BATCH, lines, store="memory:").batch_id


async def test_a_lease_left_by_a_failed_release_is_taken_back_at_once() -> None:
    class Flaky(MemoryStore):
        fail = False

        def swap_claim(self, name: str, expected: bytes | None, new: bytes | None) -> bool:
            if self.fail:
                raise OSError("store unreachable")
            return super().swap_claim(name, expected, new)

    store = Flaky()
    async with holding(store, "in-1", seconds=60):
        store.fail = True  # the release fails: the claim stays, but this process knows it
    store.fail = False
    assert store.read_claim("in-1") is not None
    with anyio.fail_after(30):  # a hang guard: a stale lease would take 60 s
        lease = await take(store, "in-1", seconds=60)
    assert lease is not None and lease.took_over is None
