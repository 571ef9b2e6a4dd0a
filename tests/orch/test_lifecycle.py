"""A run's lifecycle has one authority: one process at a time per lineage, one status at a time.

Resumes of one run cannot run at once; a resume of a run that was itself resumed reuses every
finished step and effect of the whole lineage; cancellation is recorded; the ledger holds each
status change; every failed attempt of a retried step is kept with its error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from pydantic import BaseModel

import orch
from orch import Context, PipelineBuilder, RetryableError, RetryPolicy, RunBusyError, agent
from orch._lineage import lineage_members
from orch.testing import ManualClock
from traces import MemoryStore, RunHead, open_store, verify_run, verify_store
from traces._ledger import ledger_of
from traces._ledger_entries import parse_entry
from traces._runview import load_run_view

ROOT = Path(__file__).parents[2]
EFFECTS = str(ROOT / "tests" / "fixtures" / "effects_pipeline.py")
STUBBORN = str(ROOT / "tests" / "fixtures" / "interrupt_pipelines.py")


class Text(BaseModel):
    text: str


class Calls:
    """A stand-in model that counts the requests it finished, and can stop the run."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self.stop_after: int | None = None
        self.control: orch.RunControl | None = None
        self.gate: anyio.Event | None = None
        self.at_gate = anyio.Event()  # set when a call first waits at the gate

    async def __call__(self, prompt: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()  # a real call waits for its answer: a cancel point
        if self.gate is not None:
            self.at_gate.set()
            await self.gate.wait()
        self.finished.append(prompt)
        if self.stop_after is not None and len(self.finished) >= self.stop_after:
            assert self.control is not None
            self.control.cancel("stopped by the test")
        return {"text": prompt + "!"}


def chain(n: int) -> orch.Pipeline:
    @agent(name="step", version="1")
    async def step(t: Text, ctx: Context) -> Text:
        calls: Calls = ctx.service("calls")
        reply = await ctx.effect("model", "stand-in", {"prompt": t.text}, lambda: calls(t.text))
        return Text(text=reply["text"])

    p = PipelineBuilder("lifecycle-chain")
    prev = p.node("s00", step, text=p.input("text", str))
    for i in range(1, n):
        prev = p.node(f"s{i:02d}", step, text=prev.field("text"))
    p.output("text", prev.field("text"))
    return p.build()


def _head(store: Any, run_id: str) -> RunHead:
    return RunHead.model_validate_json(store.read_run_head(run_id))


def _ledger(store: Any) -> list[tuple[str, str, str]]:
    out = []
    for _, data in ledger_of(store).entries():
        entry = parse_entry(data)
        out.append((entry.type, getattr(entry, "run", ""), getattr(entry, "status", "")))
    return out


async def test_a_resume_of_a_resumed_run_reuses_the_whole_lineage() -> None:
    pipeline = chain(10)
    reference = await orch.arun(
        pipeline, {"text": "x"}, store=MemoryStore(), services={"calls": Calls()}
    )
    store = MemoryStore()
    calls = Calls()
    services = {"calls": calls}
    # The original stops after 3 calls, its resume after 3 more.
    calls.control, calls.stop_after = orch.RunControl(), 3
    first = await orch.arun(
        pipeline, {"text": "x"}, store=store, services=services, control=calls.control
    )
    assert first.status == "cancelled"
    calls.control, calls.stop_after = orch.RunControl(), 6
    second = await orch.arun(
        pipeline, store=store, resume=first.run_id, services=services, control=calls.control
    )
    assert second.status == "cancelled"
    # Resume the ORIGINAL again: what its resume finished must be reused too.
    calls.stop_after = None
    third = await orch.arun(pipeline, store=store, resume=first.run_id, services=services)
    assert third.ok
    assert third.root_hash == reference.root_hash
    assert len(calls.finished) == 10  # every call made exactly once across the three runs
    assert len(set(calls.finished)) == 10
    # One status each: the ok one, and the two it superseded.
    heads = {h.run_id: h for h in lineage_members(store, first.run_id)}
    assert [h.run_id for h in heads.values()] == [first.run_id, second.run_id, third.run_id]
    assert heads[first.run_id].status == "superseded"
    assert heads[first.run_id].superseded_by == third.run_id
    assert heads[first.run_id].resumed_by == [second.run_id, third.run_id]
    assert heads[second.run_id].status == "superseded"
    assert heads[third.run_id].status == "ok"
    assert heads[third.run_id].lineage == first.run_id == heads[second.run_id].lineage
    # The ledger holds every status change, in order.
    assert _ledger(store)[1:] == [
        ("start", first.run_id, ""),
        ("seal", first.run_id, "cancelled"),
        ("start", second.run_id, ""),
        ("seal", second.run_id, "cancelled"),
        ("start", third.run_id, ""),
        ("seal", third.run_id, "ok"),
        ("status", first.run_id, "superseded"),
        ("status", second.run_id, "superseded"),
    ]
    report = verify_store(store)
    assert report.ok, report.problems
    # Nothing left to resume in this lineage, from any of its runs.
    for run_id in (first.run_id, second.run_id, third.run_id):
        with pytest.raises(orch.OrchError, match="nothing to resume"):
            await orch.arun(pipeline, store=store, resume=run_id, services=services)


async def test_two_resumes_of_one_run_cannot_run_at_once() -> None:
    pipeline = chain(3)
    store = MemoryStore()
    calls = Calls()
    calls.control, calls.stop_after = orch.RunControl(), 1
    first = await orch.arun(
        pipeline, {"text": "x"}, store=store, services={"calls": calls}, control=calls.control
    )
    assert first.status == "cancelled"
    calls.stop_after = None
    calls.gate = anyio.Event()  # the first resume holds the lineage until the test opens it
    outcome: dict[str, Any] = {}
    holder_done = anyio.Event()
    clock = ManualClock()  # the leases' clock: the waiter looks again when the test says

    async def holder() -> None:
        outcome["holder"] = await orch.arun(
            pipeline, store=store, resume=first.run_id, services={"calls": calls}
        )
        holder_done.set()

    # A guard against a hang (a lease never released, a waiter never woken), not a measurement.
    with clock.installed(), anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await calls.at_gate.wait()  # the holder holds the lineage and makes its first call
            # A second resume, of the original or of the resume in progress, is refused...
            with pytest.raises(RunBusyError) as busy:
                await orch.arun(
                    pipeline, store=store, resume=first.run_id, services={"calls": calls}
                )
            assert "is being worked on by" in str(busy.value) and "pid" in str(busy.value)
            holder_run = next(r for r in store.run_ids() if r != first.run_id)
            assert f"(run {holder_run})" in str(busy.value)  # it names the run the holder makes

            # ... or waits for it, with wait=True, and then finds nothing left to do.
            async def waiter() -> None:
                with pytest.raises(orch.OrchError, match="nothing to resume"):
                    await orch.arun(
                        pipeline,
                        store=store,
                        resume=first.run_id,
                        wait=True,
                        services={"calls": calls},
                    )
                outcome["waiter"] = True

            tg.start_soon(waiter)
            await clock.wait_for_sleepers(2)  # the holder's renewer, and the waiter waiting
            assert "waiter" not in outcome  # still waiting
            calls.gate.set()
            await holder_done.wait()  # the holder finished and released the lineage
            clock.advance(1)  # the waiter's next look finds it free
    assert outcome["holder"].ok and outcome["waiter"]
    assert len(calls.finished) == 3  # the first call once, the other two once


async def test_a_run_cancelled_by_its_caller_is_recorded_and_the_cancel_goes_on() -> None:
    pipeline = chain(5)
    store = MemoryStore()
    calls = Calls()
    calls.gate = anyio.Event()  # never opened: the run waits at its first call

    async def cancel_mid_run(scope: anyio.CancelScope) -> None:
        await calls.at_gate.wait()
        scope.cancel()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_mid_run, scope)
            await orch.arun(pipeline, {"text": "x"}, store=store, services={"calls": calls})
    assert scope.cancelled_caught  # the caller's cancellation was not swallowed
    (run_id,) = store.run_ids()
    head = _head(store, run_id)
    assert head.status == "cancelled" and head.root_hash is not None
    view = load_run_view(store, run_id)
    assert view.record is not None and view.record.error is not None
    assert view.record.error.message == "the run was cancelled by its caller"
    assert {s.record.status for s in view.steps.values()} == {"cancelled"}
    assert verify_run(store, run_id).ok


async def test_a_run_id_already_in_the_store_is_refused() -> None:
    pipeline = chain(1)
    store = MemoryStore()
    done = await orch.arun(pipeline, {"text": "x"}, store=store, services={"calls": Calls()})
    with pytest.raises(orch.OrchError, match="already in store"):
        await orch.arun(
            pipeline, {"text": "y"}, store=store, run_id=done.run_id, services={"calls": Calls()}
        )
    assert verify_store(store).ok


async def test_every_failed_attempt_is_kept_with_its_error() -> None:
    tries = 0

    @agent(name="flaky", version="1")
    async def flaky(t: Text, ctx: Context) -> Text:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise RetryableError(f"upstream 503 (try {tries})")
        return t

    p = PipelineBuilder("retried")
    p.output(
        "text",
        p.node(
            "f",
            flaky,
            text=p.input("text", str),
            retry=RetryPolicy(max_attempts=3, initial_wait=0.001),
        ).field("text"),
    )
    store = MemoryStore()
    result = await orch.arun(p.build(), {"text": "x"}, store=store)
    assert result.ok
    step = load_run_view(store, result.run_id).steps["f"]
    assert step.attempts == 3
    assert [(f.attempt, f.error.message, f.retried) for f in step.failed_attempts] == [
        (1, "upstream 503 (try 1)", True),
        (2, "upstream 503 (try 2)", True),
    ]
    assert step.failed_attempts[0].error.type == "orch.errors.RetryableError"
    from rich.console import Console

    from orch.render._terminal import step_tree

    console = Console(width=200, record=True)
    console.print(step_tree(load_run_view(store, result.run_id)))
    assert "attempt 1 failed (retried): orch.errors.RetryableError: upstream 503 (try 1)" in (
        console.export_text()
    )
    from orch.render._run_report import render_run_report

    assert "attempt 2 failed (retried): orch.errors.RetryableError: upstream 503 (try 2)" in (
        render_run_report(store, result.run_id)
    )


def _orch(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orch.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ended(store_loc: str) -> int:
    store = open_store(store_loc, create=False)
    try:
        (run_id,) = store.run_ids()
        n = 0
        for line in store.read_events(run_id):
            with contextlib.suppress(orjson.JSONDecodeError):  # a torn tail while it writes
                n += orjson.loads(line).get("type") == "step_end"
        return n
    finally:
        store.close()


def _wait_for_steps(store_loc: str, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a guard against a hang, not a measurement
    while time.monotonic() < deadline:
        if Path(store_loc).exists() and (Path(store_loc) / "runs").exists():
            try:
                if _ended(store_loc) >= n:
                    return
            except ValueError:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    pytest.fail("the run never got going")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_cancels_cleanly_and_prints_how_to_resume(
    tmp_path: Path, signum: signal.Signals
) -> None:
    store = str(tmp_path / "store")
    env = dict(os.environ, ORCH_TEST_STEP_SECONDS="0.05", ORCH_STORE="")
    proc = _orch("run", f"{EFFECTS}:long_chain", "-i", "question=hi", "--store", store, env=env)
    _wait_for_steps(store, 3, proc)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    st = open_store(store, create=False)
    (run_id,) = st.run_ids()
    head = _head(st, run_id)
    assert head.status == "cancelled" and head.root_hash is not None
    st.close()
    assert f"run {run_id} was cancelled and recorded" in err
    assert f"--resume {run_id} --store {store}" in err
    assert "Traceback" not in err
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "orch.cli",
            "run",
            f"{EFFECTS}:long_chain",
            "--resume",
            run_id,
            "--store",
            store,
            "--json",
        ],
        env=dict(env, ORCH_TEST_STEP_SECONDS="0"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    st = open_store(store, create=False)
    assert _head(st, run_id).status == "superseded"
    assert verify_store(st).ok
    st.close()


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    # The second step takes 30 s to let go when cancelled: the first Ctrl-C waits for it,
    # the second does not.
    env = dict(os.environ, ORCH_STORE="")
    proc = _orch("run", f"{STUBBORN}", "-i", "text=hi", "--store", store, env=env)
    _wait_for_steps(store, 1, proc)
    time.sleep(0.2)  # into the second step
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still letting go of the stubborn call
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)  # well before the 30 s the call takes
    assert proc.returncode == 130, err
    assert "SIGINT: stopping run" in err
    assert "stopped at once: run " in err and "resume it with: orch run" in err
    assert "Traceback" not in err
    st = open_store(store, create=False)
    (run_id,) = st.run_ids()
    assert _head(st, run_id).status == "running"  # never sealed: a resume takes it over
    assert verify_run(st, run_id).ok
    st.close()
