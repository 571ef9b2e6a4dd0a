"""Store throughput: artifact puts and event appends per second of the directory, SQLite and
PostgreSQL stores, with 1 and 4 concurrent writer processes.

Each writer is a separate process that opens its own store object on the same store (one
directory, one SQLite file, one PostgreSQL schema), puts its own distinct payloads (1 KiB by
default), then appends event lines (about 200 bytes, like the engine's) to a run of its own.
The writers start each phase together (a barrier), and a cell's rate is every writer's
operations divided by the time from the first start to the last finish. Every cell gets a
fresh, empty store, and the figures are medians over ``--repeat`` rounds. The ratio is to the
1-writer directory store measured in the same process run: compare ratios, not absolute
numbers across machines. The suite never asserts on time.

Durability differs by default and the table says so: the directory store does not fsync
(``DirectoryStore(fsync=True)`` does), SQLite runs in WAL mode with ``synchronous=NORMAL``,
PostgreSQL commits durably (``synchronous_commit=on``, the server default). SQLite and
PostgreSQL write puts and lines behind, in batches (``traces._writebehind``): each phase
ends with ``store.flush()``, inside the timing, so the rates are of committed writes; the
``postgres async`` rows use ``synchronous_commit=off`` for the session (set through the DSN's
``options``), which, like the other two, may lose the last moments of writes on a crash.

PostgreSQL: with ``--pg-dsn`` the benchmark uses that server (a fresh schema per cell, dropped
afterwards); without it, it starts a throwaway server with Debian's binaries (see
``tests/fixtures/pg_server.py``, durable settings), and skips the PostgreSQL rows with a note
when they are not installed. Run::

    python tests/benchmarks/store_throughput.py              # 5,000 puts, 2,000 appends, 3 rounds
    python tests/benchmarks/store_throughput.py --quick      # 1,000 puts, 400 appends, 1 round
    python tests/benchmarks/store_throughput.py --pg-dsn postgresql://u:pw@host/db --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))  # pg_server, the test server helper

from traces import ArtifactStore, DirectoryStore, SQLiteStore  # noqa: E402

# The spec of a store a writer opens: (kind, location, schema).
Spec = tuple[str, str, str]
ASYNC_COMMIT = "options=-c%20synchronous_commit%3Doff"
DURABILITY = {
    "directory": "no fsync",
    "sqlite": "WAL, synchronous=NORMAL",
    "postgres": "synchronous_commit=on (the default)",
    "postgres async": "synchronous_commit=off",
}


def open_spec(spec: Spec) -> ArtifactStore:
    kind, location, schema = spec
    if kind == "directory":
        return DirectoryStore(location)
    if kind == "sqlite":
        return SQLiteStore(location)
    from traces.pgstore import PostgresStore

    return PostgresStore(location, schema=schema)


def payloads(writer: int, count: int, size: int) -> list[bytes]:
    """``count`` distinct payloads of exactly ``size`` bytes, different for every writer."""
    filler = b"x" * size
    return [(b"w%d i%d " % (writer, i) + filler)[:size] for i in range(count)]


def writer(
    spec: Spec,
    index: int,
    puts: int,
    appends: int,
    size: int,
    barrier: Any,
    results: Any,
) -> None:
    """One writer process: open the store, then put and append when everyone is ready."""
    store = open_spec(spec)
    data = payloads(index, puts, size)
    pad = "p" * 150
    lines = [b'{"type":"step_end","seq":%d,"step":"s%05d","pad":"%s"}' % (i, i, pad.encode())
             for i in range(appends)]  # fmt: skip
    run_id = f"bench-w{index}"
    barrier.wait()
    t0 = time.monotonic()  # system-wide on Linux, so comparable across processes
    for blob in data:
        store.put(blob)
    store.flush()  # a store that writes behind (SQLite, PostgreSQL) commits here: timed too
    t1 = time.monotonic()
    barrier.wait()
    t2 = time.monotonic()
    for line in lines:
        store.append_event(run_id, line)
    store.flush()
    t3 = time.monotonic()
    store.close()
    results.put((index, t0, t1, t2, t3))


def cell(spec: Spec, writers: int, puts: int, appends: int, size: int) -> tuple[float, float]:
    """(puts per second, appends per second) of ``writers`` processes on a fresh store."""
    ctx = mp.get_context("spawn")  # never fork a process holding connections or files
    barrier = ctx.Barrier(writers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(spec, i, puts, appends, size, barrier, results))
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a {spec[0]} writer failed with exit code {p.exitcode}")
    put_s = max(r[2] for r in got) - min(r[1] for r in got)
    append_s = max(r[4] for r in got) - min(r[3] for r in got)
    check = open_spec(spec)
    try:
        stored = sum(1 for _ in check.keys())
        assert stored == writers * puts, f"{spec[0]}: {stored} artifacts, not {writers * puts}"
        for i in range(writers):
            assert len(check.read_events(f"bench-w{i}")) == appends
    finally:
        check.close()
    return writers * puts / put_s, writers * appends / append_s


def postgres_dsn(given: str | None) -> tuple[str | None, str, Any]:
    """(dsn or None, note, stop function or None)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return (
            None,
            "PostgreSQL skipped: psycopg is not installed (pip install 'orch[postgres]')",
            None,
        )
    if given:
        return given, "PostgreSQL: the server given by --pg-dsn", None
    from pg_server import postgres_bin_dir, start_postgres

    if postgres_bin_dir() is None:
        return None, "PostgreSQL skipped: no server binaries (apt-get install postgresql)", None
    dsn, stop = start_postgres(fsync=True)
    return dsn, "PostgreSQL: a throwaway local server (127.0.0.1, default durable settings)", stop


def drop_schemas(dsn: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ratio(r: float) -> str:
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--puts", type=int, help="artifact puts per writer (default 5,000)")
    parser.add_argument("--appends", type=int, help="event appends per writer (default 2,000)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per artifact")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, help="rounds per cell, median (default 3)")
    parser.add_argument("--pg-dsn", help="use this PostgreSQL server instead of starting one")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 puts, 400 appends, 1 round (unless given)"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    defaults = (1000, 400, 1) if args.quick else (5000, 2000, 3)
    args.puts = args.puts or defaults[0]
    args.appends = args.appends or defaults[1]
    args.repeat = args.repeat or defaults[2]
    if 1 not in args.writers:
        parser.error("--writers must include 1: the ratios are to the 1-writer directory store")

    dsn, pg_note, stop = postgres_dsn(args.pg_dsn)
    durability = dict(DURABILITY)
    if args.pg_dsn:
        durability["postgres"] = "as the given server is configured"
    kinds = ["directory", "sqlite"] + (["postgres", "postgres async"] if dsn else [])
    schemas: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:

            def fresh(kind: str, writers: int, r: int) -> Spec:
                name = f"{kind.replace(' ', '-')}-w{writers}-r{r}"
                if kind == "directory":
                    spec: Spec = (kind, str(Path(tmp) / name), "")
                elif kind == "sqlite":
                    spec = (kind, str(Path(tmp) / f"{name}.db"), "")
                else:
                    assert dsn is not None
                    schema = f"bench_{secrets.token_hex(6)}"
                    schemas.append(schema)
                    sep = "&" if "?" in dsn else "?"
                    location = dsn + (sep + ASYNC_COMMIT if kind == "postgres async" else "")
                    spec = ("postgres", location, schema)
                open_spec(spec).close()  # created before the race: the writers time writes only
                return spec

            cells: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for r in range(args.repeat):
                # Rounds interleave the cells, so drift on a shared machine hits all alike.
                for kind in kinds:
                    for writers in args.writers:
                        spec = fresh(kind, writers, r)
                        result = cell(spec, writers, args.puts, args.appends, args.size)
                        cells.setdefault((kind, writers), []).append(result)
            base_put = statistics.median(p for p, _ in cells[("directory", 1)])
            base_append = statistics.median(a for _, a in cells[("directory", 1)])
            for (kind, writers), results in cells.items():
                puts = statistics.median(p for p, _ in results)
                appends = statistics.median(a for _, a in results)
                rows.append(
                    {
                        "store": kind,
                        "writers": writers,
                        "puts_per_s": round(puts, 1),
                        "puts_ratio": round(puts / base_put, 3),
                        "appends_per_s": round(appends, 1),
                        "appends_ratio": round(appends / base_append, 3),
                        "durability": durability[kind],
                    }
                )
    finally:
        if dsn and args.pg_dsn and schemas:
            drop_schemas(dsn, schemas)
        if stop is not None:
            stop()

    print(
        f"store throughput: {args.size}-byte artifacts, {args.puts} puts and {args.appends} "
        f"event appends per writer process, median of {args.repeat} round(s)"
    )
    print(pg_note)
    print(
        "| store | writers | puts/s | vs directory x1 | appends/s | vs directory x1 | durability |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['store']} | {row['writers']} | {row['puts_per_s']:,.0f} | "
            f"{ratio(row['puts_ratio'])} | {row['appends_per_s']:,.0f} | "
            f"{ratio(row['appends_ratio'])} | {row['durability']} |"
        )
    if args.json:
        meta = {
            "size": args.size,
            "puts_per_writer": args.puts,
            "appends_per_writer": args.appends,
            "repeat": args.repeat,
            "postgres": pg_note,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
