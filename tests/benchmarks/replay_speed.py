"""Replay and resume speed: reading a run's record back against making it.

A chain of N nodes (default 1,000), each making one effect that answers at once (an
"instant model"), is run three ways per round, on a MemoryStore and on a DirectoryStore in a
temporary folder (the embedded default):

* **recorded**: ``orch.arun`` on a new input, every record and event written;
* **replay**: ``orch.areplay`` of that run, every effect served from its record (checked
  clean: the same root hash, no divergence);
* **resume (failed)**: the same input run again with its last node failing after its effect
  (not timed), then ``arun(..., resume=...)`` of it, checked to end ok with the
  uninterrupted run's root hash. The failed run has a run record;
* **resume (killed)**: the same, but the last node raises what no step catches (a
  ``BaseException``, not timed), so that the run ends as a SIGKILL at its last node leaves
  it: that node's start and effect in the log and nothing after, no run record, its head
  still ``running`` (the lease is let go, which a killed process's is not: a resume would
  take it over once stale). The resume reads the log.

Issue 17's targets: replay per node at most the recorded run per node (ratio <= 1), and a
resume of a run killed at its last node at most 10% of the uninterrupted run (the whole
resume, reading the record included, against the whole recorded run). Each directory-store
operation opens the store anew, as a CLI command in a new process would (the opening itself
is not timed; what it reads lazily is). The operations alternate within each round and the
figures are medians over the rounds, so that drift on a shared machine hits them alike;
garbage collection (of the young generations) runs between timed operations, not inside
them. Compare ratios, not absolute numbers, across machines.

Run: ``python tests/benchmarks/replay_speed.py`` (``--nodes 50 --rounds 1`` for a smoke
run, ``--json FILE`` to keep the numbers, ``--strict`` to exit 1 on a missed target).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from orch import Context, Pipeline, PipelineBuilder, agent
from orch._replay import areplay
from orch._runtime import RunResult, arun
from traces import ArtifactStore, DirectoryStore, MemoryStore

REPLAY_RATIO = 1.0
"""Replay per node at most this many times the recorded run per node."""
RESUME_RATIO = 0.10
"""A resume of a run killed at its last node at most this fraction of the uninterrupted run."""

_FAIL_LAST = {"on": False, "kill": False}
"""Set while a run meant to stop at its last node is made: the node fails after its effect
(``on``), or raises :class:`Killed` (``kill``)."""


class Killed(BaseException):
    """Stands in for a SIGKILL: no step catches it, so nothing after it is recorded."""


class Num(BaseModel):
    x: int


async def _instant_model(x: int) -> dict[str, int]:
    return {"y": x + 1}


@agent(name="caller", version="1")
async def caller(n: Num, ctx: Context) -> Num:
    out = await ctx.effect("model", "instant", {"x": n.x}, lambda: _instant_model(n.x))
    return Num(x=out["y"])


@agent(name="last-caller", version="1")
async def last_caller(n: Num, ctx: Context) -> Num:
    out = await ctx.effect("model", "instant", {"x": n.x}, lambda: _instant_model(n.x))
    if _FAIL_LAST["kill"]:
        raise Killed("killed at the last node")
    if _FAIL_LAST["on"]:
        raise RuntimeError("failed at the last node")
    return Num(x=out["y"])


def chain(n: int) -> Pipeline:
    p = PipelineBuilder(f"replay-chain-{n}")
    prev = p.node("n00000", caller, x=p.input("x", int))
    for i in range(1, n - 1):
        prev = p.node(f"n{i:05d}", caller, x=prev.field("x"))
    p.node(f"n{n - 1:05d}", last_caller, x=prev.field("x"))
    return p.build()


@dataclass
class Figures:
    store: str
    recorded_s: list[float] = field(default_factory=list)
    replay_s: list[float] = field(default_factory=list)
    resume_s: list[float] = field(default_factory=list)
    resume_killed_s: list[float] = field(default_factory=list)

    def median_us(self, what: str, n: int) -> float:
        values: list[float] = getattr(self, f"{what}_s")
        return statistics.median(values) / n * 1e6 if values else float("nan")


async def _timed(into: list[float], make: Callable[[], Awaitable[Any]]) -> Any:
    # The young generations only: what a run leaves is all young (the collector is off while
    # it runs), and a full collection would also empty the interpreter's free lists, which
    # the next run would pay for (about 0.5 ms a run here: 5 µs a node at N=100).
    gc.collect(1)
    gc.disable()  # collect between operations, not inside one: pauses would be noise
    try:
        t0 = time.perf_counter()
        out = await make()
        into.append(time.perf_counter() - t0)
        return out
    finally:
        gc.enable()


class Contender:
    """One store kind: hands out the store object each operation uses."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self._memory = MemoryStore() if name == "memory" else None

    def open(self) -> ArtifactStore:
        # The directory store is opened anew per operation, as each CLI command would.
        return self._memory if self._memory is not None else DirectoryStore(self.folder)

    @staticmethod
    def done(store: ArtifactStore) -> None:
        if not isinstance(store, MemoryStore):
            store.close()


async def one_round(
    contender: Contender, pipeline: Pipeline, x: int, figures: Figures, timed: bool
) -> None:
    """Record, replay and resume once; append the times when ``timed``."""
    sink: dict[str, list[float]] = (
        {
            "recorded": figures.recorded_s,
            "replay": figures.replay_s,
            "resume": figures.resume_s,
            "resume_killed": figures.resume_killed_s,
        }
        if timed
        else {"recorded": [], "replay": [], "resume": [], "resume_killed": []}
    )
    store = contender.open()
    recorded = await _timed(sink["recorded"], lambda: arun(pipeline, {"x": x}, store=store))
    contender.done(store)
    if not recorded.ok:
        raise RuntimeError(f"{contender.name}: the recorded run failed: {recorded.error}")

    store = contender.open()
    report = await _timed(sink["replay"], lambda: areplay(pipeline, recorded.run_id, store))
    contender.done(store)
    if not report.clean:
        raise RuntimeError(f"{contender.name}: the replay is not clean: {report.to_json()}")

    store = contender.open()
    _FAIL_LAST["on"] = True
    try:
        killed = await arun(pipeline, {"x": x}, store=store)
    finally:
        _FAIL_LAST["on"] = False
    contender.done(store)
    if killed.status != "failed":
        raise RuntimeError(f"{contender.name}: the run meant to fail ended {killed.status}")
    store = contender.open()
    resumed = await _timed(
        sink["resume"], lambda: arun(pipeline, store=store, resume=killed.run_id)
    )
    contender.done(store)
    _check_resumed(contender, resumed, recorded)

    store = contender.open()
    killed_id = f"killed-{x}-{contender.name}"
    _FAIL_LAST["kill"] = True
    try:
        await arun(pipeline, {"x": x}, store=store, run_id=killed_id)
    except BaseException as exc:  # anyio may wrap it in a group
        if not _is_killed(exc):
            raise
    else:
        raise RuntimeError(f"{contender.name}: the run meant to be killed ended")
    finally:
        _FAIL_LAST["kill"] = False
    contender.done(store)
    store = contender.open()
    resumed = await _timed(
        sink["resume_killed"], lambda: arun(pipeline, store=store, resume=killed_id)
    )
    contender.done(store)
    _check_resumed(contender, resumed, recorded)


def _is_killed(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_killed(e) for e in exc.exceptions)
    return isinstance(exc, Killed)


def _check_resumed(contender: Contender, resumed: RunResult, recorded: RunResult) -> None:
    if not resumed.ok or resumed.root_hash != recorded.root_hash:
        raise RuntimeError(
            f"{contender.name}: the resume ended {resumed.status} with root hash "
            f"{resumed.root_hash}, not the uninterrupted run's {recorded.root_hash}"
        )


async def bench(nodes: int, rounds: int, log: Callable[[str], None]) -> list[Figures]:
    pipeline = chain(nodes)
    out = []
    with tempfile.TemporaryDirectory(prefix="orch-replay-") as tmp:
        contenders = [Contender(name, Path(tmp) / name) for name in ("memory", "directory")]
        figures = [Figures(c.name) for c in contenders]
        x = 0
        for contender, fig in zip(contenders, figures, strict=True):
            x += 1
            await one_round(contender, pipeline, x, fig, timed=False)  # warm-up
        for r in range(rounds):
            # Alternate which store goes first, so that neither always follows the other.
            order = list(zip(contenders, figures, strict=True))
            for contender, fig in order if r % 2 == 0 else reversed(order):
                x += 1
                await one_round(contender, pipeline, x, fig, timed=True)
            log(
                f"  round {r + 1}/{rounds}: "
                + "  ".join(
                    f"{f.store} recorded {f.recorded_s[-1] / nodes * 1e6:.1f} replay "
                    f"{f.replay_s[-1] / nodes * 1e6:.1f} resume "
                    f"{f.resume_s[-1] / nodes * 1e6:.1f} / "
                    f"{f.resume_killed_s[-1] / nodes * 1e6:.1f}"
                    for f in figures
                )
                + " µs/node"
            )
        out.extend(figures)
    return out


def report(figures: list[Figures], nodes: int) -> tuple[list[str], list[str]]:
    lines = [
        "| store | recorded | replay | replay / recorded | resume (failed) | / run "
        "| resume (killed) | / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for f in figures:
        rec, rep, res, kil = (
            f.median_us(w, nodes) for w in ("recorded", "replay", "resume", "resume_killed")
        )
        # Ratios of medians: each operation's median over the same rounds.
        lines.append(
            f"| {f.store} | {rec:.1f} | {rep:.1f} | {rep / rec:.2f}x | {res:.1f} | "
            f"{res / rec:.1%} | {kil:.1f} | {kil / rec:.1%} |"
        )
        verdicts.append(
            f"{'PASS' if rep / rec <= REPLAY_RATIO else 'FAIL'} {f.store}: replay per node at "
            f"most the recorded run's ({rep / rec:.2f}x)"
        )
        for what, value in (("failed", res), ("killed", kil)):
            verdicts.append(
                f"{'PASS' if value / rec <= RESUME_RATIO else 'FAIL'} {f.store}: resume of a "
                f"run {what} at its last node at most {RESUME_RATIO:.0%} of the uninterrupted "
                f"run ({value / rec:.1%})"
            )
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the chain (>= 2)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    nodes, rounds = max(2, args.nodes), max(1, args.rounds)
    load_before = os.getloadavg()
    print(
        f"replay speed: a chain of {nodes:,} nodes, one instant effect each, {rounds} round(s), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {load_before[0]:.2f}"
    )
    figures = anyio.run(bench, nodes, rounds, print)
    load_after = os.getloadavg()
    lines, verdicts = report(figures, nodes)
    print()
    print("µs per node, medians over the rounds; ratios from this one run")
    print("\n".join(lines))
    print()
    print("\n".join(verdicts))
    print(f"\nload average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "nodes": nodes,
                    "rounds": rounds,
                    "python": platform.python_version(),
                    "load": [load_before[0], load_after[0]],
                    "figures": [
                        {
                            "store": f.store,
                            "recorded_s": f.recorded_s,
                            "replay_s": f.replay_s,
                            "resume_s": f.resume_s,
                            "resume_killed_s": f.resume_killed_s,
                        }
                        for f in figures
                    ],
                    "verdicts": verdicts,
                },
                indent=2,
            )
        )
    failed = any(v.startswith("FAIL") for v in verdicts)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
