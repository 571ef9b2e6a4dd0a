"""Lease overhead: batch runs per second with and without the leases on their inputs.

Every input of a batch is run under a lease (``orch/lease.py``): a claim swapped in the store
before the run, renewed while it lasts, released after. This measures what that costs, per
store backend: the same batch through the local executor into a fresh store, once with the
backend as it is and once with the same backend told it keeps no claims (so the executor runs
without leases). The runs are those of ``tests/fixtures/batch_pipelines.py`` (two recorded
model calls and a seeded choice each); ``--latency-ms`` makes each call wait first, as a
provider would. The two variants alternate, ``--repeat`` rounds, and each figure is the median,
so drift in a shared machine's load falls on both; compare the ratio, not absolute numbers.
The suite never asserts on time. Run::

    python tests/benchmarks/lease_overhead.py                    # 300 runs, 0 and 50 ms, 5 rounds
    python tests/benchmarks/lease_overhead.py --runs 20 --repeat 1 --latency-ms 0   # smoke

PostgreSQL: ``--pg-dsn`` uses that server (a fresh schema per cell); without it a throwaway
server is started from Debian's binaries (``tests/fixtures/pg_server.py``), and the row is
skipped with a note when they are not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))  # batch_checks, pg_server

from batch_checks import BATCH, questions  # noqa: E402

from orch import BatchSpec, LocalExecutor  # noqa: E402
from traces import ArtifactStore, DirectoryStore, SQLiteStore  # noqa: E402

Opener = Callable[[type[ArtifactStore], str], ArtifactStore]


def without_claims(cls: type[ArtifactStore]) -> type[ArtifactStore]:
    """``cls`` saying it keeps no claims: the executor then runs its inputs without leases."""
    return type(f"{cls.__name__}WithoutClaims", (cls,), {"supports_claims": False})


async def rate(store: ArtifactStore, runs: int, parallel: int) -> float:
    spec = BatchSpec.create(BATCH, questions(runs), store="memory:")
    started = time.perf_counter()
    result = await LocalExecutor(parallel, store=store).run_batch(spec)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the batch failed: {result.summary()}")
    return runs / seconds


def cell(
    cls: type[ArtifactStore], open_store: Opener, runs: int, parallel: int, repeat: int
) -> tuple[float, float]:
    """(median runs/s with leases, without), the two alternating."""
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for leases in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                store = open_store(cls if leases else without_claims(cls), tmp)
                try:
                    rates[leases].append(anyio.run(rate, store, runs, parallel))
                finally:
                    store.close()
    return statistics.median(rates[True]), statistics.median(rates[False])


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str | None]:
    if dsn is not None:
        yield dsn
        return
    try:
        from pg_server import postgres_server
    except ImportError:
        yield None
        return
    try:
        with postgres_server() as started:
            yield started
    except Exception as exc:  # no binaries here: the row is skipped, with the reason
        print(f"postgres: skipped ({type(exc).__name__}: {exc})")
        yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    logging.getLogger("orch.lease").setLevel(logging.ERROR)  # "keeps no claims", every cell

    backends: list[tuple[str, type[ArtifactStore], Opener]] = [
        ("directory", DirectoryStore, lambda cls, tmp: cls(f"{tmp}/store")),
        ("sqlite", SQLiteStore, lambda cls, tmp: cls(f"{tmp}/store.db")),
    ]
    with postgres(args.pg_dsn) as dsn:
        if dsn is not None:
            from traces.pgstore import PostgresStore

            backends.append(
                ("postgres", PostgresStore, lambda cls, _tmp: cls(dsn, schema=_schema()))
            )
        print(
            f"{args.runs} runs, {args.parallel} at once, median of {args.repeat} alternating "
            f"rounds, {os.cpu_count()} CPUs; runs/s"
        )
        print(f"{'store':<10} {'latency':>8} {'leases':>9} {'none':>9} {'ratio':>7}")
        for latency in args.latency_ms:
            os.environ["ORCH_BATCH_LATENCY_MS"] = f"{latency},{latency}" if latency else ""
            for name, cls, opener in backends:
                with_, without = cell(cls, opener, args.runs, args.parallel, args.repeat)
                print(
                    f"{name:<10} {latency:>6}ms {with_:>9.1f} {without:>9.1f} "
                    f"{with_ / without:>6.2f}x"
                )


def _schema() -> str:
    return "lease_" + secrets.token_hex(6)


if __name__ == "__main__":
    main()
