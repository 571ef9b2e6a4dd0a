"""Ledger overhead: what the store-wide audit ledger costs per run, against the run itself.

Every run appends two entries to its store's ledger (``start`` and ``seal``, see
``orch/runtime.py``); an auditor signs checkpoints of the ledger and checks proofs against
them. This measures each of those costs directly, per store (directory, SQLite, PostgreSQL),
against a 10-node run of the same store in the same process run:

* the baseline: µs per run of a chain of 10 no-op agents through ``orch.arun``, with every
  record and the event log written, in a store that already holds ``--prefill`` runs (1,000:
  a ledger of about 2,000 entries, so that it is not trivially small), each run with its own
  input; beside it, the same run in the same store through a store object that says it keeps
  no ledger, as a cross-check of the appends measured from the outside;
* on the ledger of that same store object (``ledger_of(store)``, long-lived, as in a worker
  process), what one run adds: two ``Ledger.append`` calls with real ``StartEntry`` and
  ``SealEntry`` models, ``Ledger.checkpoint([signer])`` (tree root, Ed25519 signed note,
  store write), ``open_checkpoint`` of that note with the verifier, the inclusion proofs of
  the two entries in it (made, then checked with ``verify_inclusion``), and the consistency
  proof from the previous checkpoint to it (made, then checked with ``verify_consistency``);
* how a checkpoint's cost grows with the ledger (``--sizes``, default 1,000 / 10,000 /
  100,000 entries, in a fresh store of each kind): a fresh store object (what a fresh process
  has) reads and hashes the whole ledger first, a long-lived one only the entries appended
  since its last call.

The variants alternate within each of ``--repeat`` rounds (their order reversed every other
round) and each figure is the median over the rounds, so drift in a shared machine's load
falls on all of them; the spread columns ((max - min) / median over the rounds) say how noisy
the machine was. A percentage is the median over the rounds of the ratio to that round's
baseline run of the same store (the growth table's, to the median run). The PASS/FAIL lines
check the target, the ledger's cost under 5% of the run, per store; the script never fails
on time. Run::

    python tests/benchmarks/ledger_overhead.py           # 1,000 runs, 7 rounds, to 100,000 entries
    python tests/benchmarks/ledger_overhead.py --quick   # 200 runs, 3 rounds, to 10,000 entries
    python tests/benchmarks/ledger_overhead.py --prefill 5 --runs 2 --ops 2 --repeat 1 \
        --sizes 10 20 --json out.json                    # smoke; --json keeps every figure

PostgreSQL: ``--pg-dsn`` uses that server (fresh schemas, dropped afterwards); without it a
throwaway server with durable settings is started from Debian's binaries
(``tests/fixtures/pg_server.py``), and the PostgreSQL rows are skipped with a note when they
are not installed. This script must never touch a schema or a server it did not create.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))  # pg_server, the test server helper

from orch import Context, Pipeline, PipelineBuilder, agent  # noqa: E402
from orch._runtime import arun, new_run_id  # noqa: E402
from traces import ArtifactStore, DirectoryStore, SQLiteStore, digest  # noqa: E402
from traces._ledger import Ledger, ledger_of  # noqa: E402
from traces._ledger_entries import SealEntry, StartEntry, entry_bytes  # noqa: E402
from traces._note import Checkpoint, Signer, Verifier, open_checkpoint  # noqa: E402
from traces._tlog import leaf_hash, verify_consistency, verify_inclusion  # noqa: E402

__all__ = ["main"]

TARGET = 0.05
"""The ledger's cost per run must stay under this fraction of the run."""
NODES = 10
LONG_LIVED_TIMES = 10
"""Checkpoints a long-lived ledger signs in a row for one figure of the growth table."""
KEY_NAME = "bench.example/ledger"

# What one run's ledger work is made of, in the order it happens, with the table's labels.
OPS: dict[str, str] = {
    "append": "2 appends (start + seal entries)",
    "checkpoint": "checkpoint: tree root + Ed25519 note + store write",
    "open": "open_checkpoint (verify the note)",
    "inclusion_make": "2 inclusion proofs: make",
    "inclusion_check": "2 inclusion proofs: check",
    "consistency_make": "consistency proof (previous checkpoint): make",
    "consistency_check": "consistency proof: check",
}
# The totals a run may pay: the appends alone (what arun does), with a checkpoint signed
# per run, and with everything an auditor does per run as well.
TOTALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "no_checkpoint": ("total, no checkpoint per run (the appends)", ("append",)),
    "checkpoint": ("total, a checkpoint per run (appends + checkpoint)", ("append", "checkpoint")),
    "everything": ("total, everything above per run", tuple(OPS)),
}
DURABILITY = {
    "directory": "no fsync",
    "sqlite": "WAL, synchronous=NORMAL",
    "postgres": "synchronous_commit=on",
}


# -- the run: a chain of no-op agents ---------------------------------------------------------


class Num(BaseModel):
    x: int


@agent(name="noop", version="1")
async def noop(n: Num, ctx: Context) -> Num:
    return n


def chain(nodes: int) -> Pipeline:
    p = PipelineBuilder(f"ledger-bench-chain-{nodes}")
    prev = p.node("n00", noop, x=p.input("x", int))
    for i in range(1, nodes):
        prev = p.node(f"n{i:02d}", noop, x=prev.field("x"))
    return p.build()


def without_ledger(cls: type[ArtifactStore]) -> type[ArtifactStore]:
    """``cls`` saying it keeps no ledger: the engine then appends no entries."""
    return type(f"{cls.__name__}WithoutLedger", (cls,), {"supports_ledger": False})


class Inputs:
    """A distinct input per run, so that every run writes records of its own (runs with the
    same input would find most of their records stored already, and cost less)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> list[int]:
        self.next += count
        return list(range(self.next - count, self.next))


async def run_batch(pipeline: Pipeline, store: ArtifactStore, xs: list[int]) -> float:
    """Mean µs per run of ``xs`` runs, one after another."""
    gc.collect()
    gc.disable()  # collect between batches, not inside one: a pause would be noise
    try:
        started = time.perf_counter()
        for x in xs:
            result = await arun(pipeline, {"x": x}, store=store)
            if not result.ok:
                raise SystemExit(f"a benchmark run failed in {store.location}: {result.error}")
        return (time.perf_counter() - started) / len(xs) * 1e6
    finally:
        gc.enable()


# -- the ledger's work for one run -----------------------------------------------------------


def entry_fields(count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The fields of ``count`` runs' start and seal entries, shaped like the engine's."""
    spec = digest(b"ledger-bench spec")
    out = []
    for _ in range(count):
        run = new_run_id()
        start = {
            "run": run,
            "pipeline": f"ledger-bench-chain-{NODES}",
            "spec": spec,
            "seed": 0,
            "start_event": digest(run.encode() + b" start"),
            "lineage": run,
            "resumed_from": None,
        }
        seal = {
            "run": run,
            "status": "ok",
            "root_hash": digest(run.encode() + b" root"),
            "steps_root": digest(run.encode() + b" steps"),
            "steps": NODES,
            "events": 2 * NODES + 2,
            "event_head": digest(run.encode() + b" end"),
        }
        out.append((start, seal))
    return out


def opened(note: bytes, verifier: Verifier) -> Checkpoint:
    checkpoint, note_opened = open_checkpoint(note, [verifier])
    note_opened.require_verified()
    return checkpoint


def ledger_ops(ledger: Ledger, signer: Signer, verifier: Verifier, count: int) -> dict[str, float]:
    """Mean µs of each of :data:`OPS` over ``count`` runs' worth of ledger work, in order."""
    fields = entry_fields(count)
    previous = opened(ledger.checkpoint([signer]), verifier)
    sums = dict.fromkeys(OPS, 0.0)
    clock = time.perf_counter
    gc.collect()
    gc.disable()
    try:
        for start_fields, seal_fields in fields:
            t0 = clock()
            start = StartEntry(**start_fields)
            at_start = ledger.append(start)
            seal = SealEntry(**seal_fields)
            at_seal = ledger.append(seal)
            t1 = clock()
            # What a verifier holds (the bundle's entry bytes): not the ledger's cost.
            leaves = [
                (at_start, leaf_hash(entry_bytes(start))),
                (at_seal, leaf_hash(entry_bytes(seal))),
            ]
            t2 = clock()
            note = ledger.checkpoint([signer])
            t3 = clock()
            checkpoint = opened(note, verifier)
            t4 = clock()
            proofs = [ledger.inclusion_proof(index, checkpoint.size) for index, _ in leaves]
            t5 = clock()
            for (index, leaf), proof in zip(leaves, proofs, strict=True):
                verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root)
            t6 = clock()
            consistency = ledger.consistency_proof(previous.size, checkpoint.size)
            t7 = clock()
            verify_consistency(
                previous.size, checkpoint.size, previous.root, checkpoint.root, consistency
            )
            t8 = clock()
            previous = checkpoint
            for op, took in zip(
                OPS, (t1 - t0, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7), strict=True
            ):
                sums[op] += took
    finally:
        gc.enable()
    return {op: total / count * 1e6 for op, total in sums.items()}


# -- stores ----------------------------------------------------------------------------------


@dataclass
class Place:
    """Where one store lives; ``open`` makes a new store object on it (a class may be given:
    the same backend told it keeps no ledger)."""

    kind: str
    location: str
    schema: str = ""

    def open(self, cls: type[ArtifactStore] | None = None) -> ArtifactStore:
        if self.kind == "directory":
            return (cls or DirectoryStore)(self.location)  # type: ignore[call-arg]
        if self.kind == "sqlite":
            return (cls or SQLiteStore)(self.location)  # type: ignore[call-arg]
        from traces.pgstore import PostgresStore

        return (cls or PostgresStore)(self.location, schema=self.schema)  # type: ignore[call-arg]

    @property
    def cls(self) -> type[ArtifactStore]:
        if self.kind == "directory":
            return DirectoryStore
        if self.kind == "sqlite":
            return SQLiteStore
        from traces.pgstore import PostgresStore

        return PostgresStore


def postgres_dsn(given: str | None) -> tuple[str | None, str, Callable[[], None] | None]:
    """(dsn or None, note, stop function or None), as ``store_throughput.py`` does."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        note = "PostgreSQL skipped: psycopg is not installed (pip install 'orch[postgres]')"
        return None, note, None
    if given:
        return given, "PostgreSQL: the server given by --pg-dsn", None
    from pg_server import postgres_bin_dir, start_postgres  # type: ignore[import-not-found]

    if postgres_bin_dir() is None:
        return None, "PostgreSQL skipped: no server binaries (apt-get install postgresql)", None
    dsn, stop = start_postgres(fsync=True)
    return dsn, "PostgreSQL: a throwaway local server (127.0.0.1, default durable settings)", stop


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Series:
    """One quantity's per-round values (µs)."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median over the rounds."""
        return (max(self.values) - min(self.values)) / self.median if self.median else 0.0


def summed(series: dict[str, Series], names: tuple[str, ...]) -> Series:
    """Per round, the sum of the quantities ``names``."""
    rounds = range(len(series["run"].values))
    return Series([sum(series[name].values[r] for name in names) for r in rounds])


def of_run(series: dict[str, Series], names: tuple[str, ...]) -> Series:
    """Per round, the sum of ``names`` as a fraction of that round's baseline run."""
    total = summed(series, names)
    return Series([t / run for t, run in zip(total.values, series["run"].values, strict=True)])


def per_run(
    place: Place, args: argparse.Namespace, signer: Signer, log: Callable[[str], None]
) -> dict[str, Series]:
    """The per-run figures of one store: ``run``, ``run_no_ledger`` and each of :data:`OPS`."""
    pipeline = chain(NODES)
    inputs = Inputs()
    store = place.open()
    plain = place.open(without_ledger(place.cls))
    verifier = signer.verifier()
    try:
        started = time.perf_counter()
        for _ in range(0, args.prefill, 100):  # each run leaves 2 entries in the ledger
            anyio.run(run_batch, pipeline, store, inputs.take(min(100, args.prefill - inputs.next)))
        log(
            f"  {place.kind}: {args.prefill} runs first in {time.perf_counter() - started:.1f} s, "
            f"ledger {store.ledger_size()} entries"
        )
        ledger = ledger_of(store)
        # Warm-up, untimed: imports, caches, the ledger tree of the prefill, first-touch.
        anyio.run(run_batch, pipeline, store, inputs.take(2))
        anyio.run(run_batch, pipeline, plain, inputs.take(2))
        ledger_ops(ledger, signer, verifier, 2)

        rounds: dict[str, list[float]] = {"run": [], "run_no_ledger": [], **{op: [] for op in OPS}}

        def with_ledger() -> None:
            rounds["run"].append(anyio.run(run_batch, pipeline, store, inputs.take(args.runs)))

        def no_ledger() -> None:
            us = anyio.run(run_batch, pipeline, plain, inputs.take(args.runs))
            rounds["run_no_ledger"].append(us)

        def ledger_work() -> None:
            for op, us in ledger_ops(ledger, signer, verifier, args.ops).items():
                rounds[op].append(us)

        variants = [with_ledger, no_ledger, ledger_work]
        for r in range(args.repeat):
            for variant in variants if r % 2 == 0 else reversed(variants):
                variant()
            log(
                f"  {place.kind} round {r + 1}/{args.repeat}: run {rounds['run'][-1]:,.0f} µs, "
                f"no ledger {rounds['run_no_ledger'][-1]:,.0f} µs, appends "
                f"{rounds['append'][-1]:,.1f} µs, checkpoint {rounds['checkpoint'][-1]:,.1f} µs"
            )
        log(f"  {place.kind}: ledger {store.ledger_size()} entries at the end")
        return {name: Series(values) for name, values in rounds.items()}
    finally:
        plain.close()
        store.close()


def growth(
    place: Place, args: argparse.Namespace, signer: Signer, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Checkpoint cost at each of ``--sizes`` ledger entries, fresh against long-lived."""
    store = place.open()
    ledger = ledger_of(store)
    ledger.ensure()
    pool: list[bytes] = []

    def entries(count: int) -> Iterator[bytes]:
        for _ in range(count):
            if not pool:
                for start, seal in entry_fields(500):
                    pool.extend([entry_bytes(StartEntry(**start)), entry_bytes(SealEntry(**seal))])
                pool.reverse()
            yield pool.pop()

    rows = []
    try:
        for size in args.sizes:
            have = store.ledger_size()
            started = time.perf_counter()
            for data in entries(max(0, size - have)):
                store.ledger_append(data)
            grown = time.perf_counter() - started
            added = max(0, size - have)
            ledger.tree()  # the long-lived object is up to date before it is timed
            fresh_tree: list[float] = []
            fresh_total: list[float] = []
            extended: list[float] = []
            warm: list[float] = []
            for r in range(args.repeat):
                for kind in ("fresh", "long-lived") if r % 2 == 0 else ("long-lived", "fresh"):
                    gc.collect()
                    if kind == "long-lived":
                        # As in a worker: a run's two entries, then a checkpoint, several
                        # times over (one alone, after a collection, runs on cold caches).
                        took = 0.0
                        for _ in range(LONG_LIVED_TIMES):
                            for data in entries(2):
                                store.ledger_append(data)
                            t0 = time.perf_counter()
                            ledger.checkpoint([signer])
                            took += time.perf_counter() - t0
                        warm.append(took / LONG_LIVED_TIMES * 1e6)
                        continue
                    for data in entries(2):  # a new tree size: not a cosignature of the last
                        store.ledger_append(data)
                    other = place.open()  # connected before the clock starts
                    try:
                        cold = Ledger(other)
                        t0 = time.perf_counter()
                        cold.tree()
                        t1 = time.perf_counter()
                        cold.checkpoint([signer])
                        t2 = time.perf_counter()
                    finally:
                        other.close()
                    fresh_tree.append((t1 - t0) * 1e6)
                    fresh_total.append((t2 - t0) * 1e6)
                    # A fresh process that signs with the key of the last checkpoint extends
                    # that checkpoint's compact range (its orch-range line): it reads only the
                    # entries since, not the whole ledger.
                    for data in entries(2):
                        store.ledger_append(data)
                    other = place.open()
                    try:
                        t0 = time.perf_counter()
                        Ledger(other).checkpoint([signer])
                        extended.append((time.perf_counter() - t0) * 1e6)
                    finally:
                        other.close()
            row = {
                "store": place.kind,
                "entries": size,
                "append_per_s": round(added / grown, 1) if added and grown else None,
                "fresh_tree_us": Series(fresh_tree),
                "fresh_checkpoint_us": Series(fresh_total),
                "fresh_extending_us": Series(extended),
                "long_lived_checkpoint_us": Series(warm),
            }
            rows.append(row)
            log(
                f"  {place.kind} {size:,} entries: fresh {row['fresh_checkpoint_us'].median:,.0f} "
                f"µs, fresh extending its last {row['fresh_extending_us'].median:,.0f} µs, "
                f"long-lived {row['long_lived_checkpoint_us'].median:,.0f} µs"
                + (f" (grown at {row['append_per_s']:,.0f} appends/s)" if added else "")
            )
        return rows
    finally:
        store.close()


# -- reporting -------------------------------------------------------------------------------


def us(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def pct(value: float) -> str:
    return f"{value:.2%}" if value < 0.1 else f"{value:.1%}"


def share(value: float) -> str:
    """A fraction of a run as a percentage, or as runs' worth from one run up."""
    return f"{value:,.1f} runs" if value >= 1 else pct(value)


def drop_schemas(dsn: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefill", type=int, help="runs in the store before timing (1,000)")
    parser.add_argument("--runs", type=int, default=50, help="runs per variant per round")
    parser.add_argument("--ops", type=int, default=100, help="runs' worth of ledger work a round")
    parser.add_argument("--repeat", type=int, help="rounds (7; 3 with --quick)")
    parser.add_argument("--sizes", type=int, nargs="+", help="ledger sizes for the growth table")
    parser.add_argument(
        "--stores", nargs="+", choices=["directory", "sqlite", "postgres"],
        default=["directory", "sqlite", "postgres"],
    )  # fmt: skip
    parser.add_argument("--pg-dsn", help="use this PostgreSQL server instead of starting one")
    parser.add_argument("--quick", action="store_true", help="200 runs first, 3 rounds, to 10,000")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    defaults = (200, 3, [1000, 10000]) if args.quick else (1000, 7, [1000, 10000, 100000])
    args.prefill = defaults[0] if args.prefill is None else args.prefill
    args.repeat = args.repeat or defaults[1]
    args.sizes = sorted(args.sizes or defaults[2])
    logging.getLogger("traces.ledger").setLevel(logging.ERROR)  # "keeps no ledger", once a store

    def log(message: str) -> None:
        print(message, flush=True)

    load_before = os.getloadavg()
    signer = Signer.generate(KEY_NAME)
    dsn, pg_note, stop = (None, "PostgreSQL: not asked for (--stores)", None)
    if "postgres" in args.stores:
        dsn, pg_note, stop = postgres_dsn(args.pg_dsn)
        log(pg_note)
    kinds = [k for k in args.stores if k != "postgres" or dsn is not None]
    schemas: list[str] = []
    results: dict[str, dict[str, Series]] = {}
    scale: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:

            def place(kind: str, tag: str) -> Place:
                if kind == "directory":
                    return Place(kind, str(Path(tmp) / f"{tag}-store"))
                if kind == "sqlite":
                    return Place(kind, str(Path(tmp) / f"{tag}.db"))
                assert dsn is not None
                schema = f"ledger_{tag}_{secrets.token_hex(6)}"
                schemas.append(schema)
                return Place(kind, dsn, schema)

            for kind in kinds:
                results[kind] = per_run(place(kind, "runs"), args, signer, log)
            for kind in kinds:
                scale.extend(growth(place(kind, "growth"), args, signer, log))
    finally:
        if dsn and args.pg_dsn and schemas:
            drop_schemas(dsn, schemas)
        if stop is not None:
            stop()
    load_after = os.getloadavg()

    print()
    print(
        f"ledger overhead: {NODES}-node chain runs (no-op agents, records and event log on) in "
        f"a store holding {args.prefill:,} runs first; {args.runs} runs per variant and "
        f"{args.ops} runs' worth of ledger work per round, median of {args.repeat} alternating "
        f"rounds; {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(pg_note)
    print()
    print(
        "µs: median over the rounds; % of run: median over the rounds of the ratio to that "
        "round's baseline run (steadier than a ratio of medians when the machine's load "
        "drifts); spread: (max - min) / median over the rounds"
    )
    print()
    print("| store | what | µs per run | spread | % of run | spread |")
    print("|---|---|---:|---:|---:|---:|")
    verdicts = []
    for kind, series in results.items():
        rows: list[tuple[str, Series, Series | None]] = [
            (f"{NODES}-node run (the baseline, ledger on)", series["run"], None),
            (
                "the same run, store object keeping no ledger",
                series["run_no_ledger"],
                of_run(series, ("run_no_ledger",)),
            ),
        ]
        rows += [(label, series[op], of_run(series, (op,))) for op, label in OPS.items()]
        for label, ops in TOTALS.values():
            share_of_run = of_run(series, ops)
            rows.append((f"**{label}**", summed(series, ops), share_of_run))
            ok = share_of_run.median < TARGET
            verdicts.append(
                f"{'PASS' if ok else 'FAIL'} {kind}: {label.removeprefix('total, ')}: "
                f"{us(summed(series, ops).median)} µs, {pct(share_of_run.median)} of the run "
                f"(target < {TARGET:.0%}; rounds {pct(min(share_of_run.values))} to "
                f"{pct(max(share_of_run.values))})"
            )
        for label, cost, ratio in rows:
            ratio_text = "100% | " if ratio is None else f"{pct(ratio.median)} | {ratio.spread:.0%}"
            print(f"| {kind} | {label} | {us(cost.median)} | {cost.spread:.0%} | {ratio_text} |")
    print()
    for kind, series in results.items():
        inside = series["run"].median - series["run_no_ledger"].median
        print(
            f"cross-check {kind}: run with the ledger minus run without = {us(inside)} µs "
            f"({pct(inside / series['run'].median)}); the 2 appends measured alone: "
            f"{us(series['append'].median)} µs (the difference of two noisy medians: see spread)"
        )
    print()
    print("checkpoint cost against ledger size (fresh: a new store object, as a new process,")
    print("reading the whole ledger; extending: a new store object signing with the key of the")
    print("last checkpoint, from that checkpoint's compact range; long-lived: the ledger object")
    print("of a process that has read the ledger before), µs")
    print()
    print(
        "| store | entries | fresh: read + hash | fresh: checkpoint | of a run | "
        "extending: checkpoint | of a run | long-lived: checkpoint | of a run | "
        "spread (fresh / extending / long-lived) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in scale:
        base = results[row["store"]]["run"].median
        fresh, warm = row["fresh_checkpoint_us"], row["long_lived_checkpoint_us"]
        ext = row["fresh_extending_us"]
        print(
            f"| {row['store']} | {row['entries']:,} | {us(row['fresh_tree_us'].median)} | "
            f"{us(fresh.median)} | {share(fresh.median / base)} | {us(ext.median)} | "
            f"{share(ext.median / base)} | {us(warm.median)} | {share(warm.median / base)} | "
            f"{fresh.spread:.0%} / {ext.spread:.0%} / {warm.spread:.0%} |"
        )
    print()
    print("\n".join(verdicts))
    spreads = {kind: series["run"].spread for kind, series in results.items()}
    print()
    print(
        "noise: the baseline run's spread across rounds "
        + ", ".join(f"{kind} {spread:.0%}" for kind, spread in spreads.items())
        + f"; load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("durability: " + ", ".join(f"{k} {DURABILITY[k]}" for k in kinds))

    if args.json:
        meta = {
            "nodes": NODES,
            "prefill": args.prefill,
            "runs_per_round": args.runs,
            "ops_per_round": args.ops,
            "repeat": args.repeat,
            "sizes": args.sizes,
            "target": TARGET,
            "postgres": pg_note,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
        }

        def series_json(s: Series) -> dict[str, Any]:
            return {"median": s.median, "spread": s.spread, "rounds": s.values}

        # Times are in µs (``us``); ``of_run`` holds fractions of the round's baseline run.
        runs_json = {
            kind: {
                "us": {name: series_json(s) for name, s in series.items()},
                "totals_us": {
                    total: series_json(summed(series, ops)) for total, (_, ops) in TOTALS.items()
                },
                "of_run": {
                    name: series_json(of_run(series, ops))
                    for name, ops in [
                        *((op, (op,)) for op in OPS),
                        *((total, ops) for total, (_, ops) in TOTALS.items()),
                    ]
                },
            }
            for kind, series in results.items()
        }
        scale_json = [
            {k: series_json(v) if isinstance(v, Series) else v for k, v in row.items()}
            for row in scale
        ]
        args.json.write_text(
            json.dumps(
                {"meta": meta, "runs": runs_json, "growth": scale_json, "verdicts": verdicts},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
