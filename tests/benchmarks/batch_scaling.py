"""Scale-out throughput: runs per second of a batch of 1,000 runs on 1, 2 and 4 Dask worker
processes, and the scaling ratio against one worker, in one process run.

Every run is a real engine run of ``tests/fixtures/batch_pipelines.py`` (a seeded model
choice, then two model calls: the answer and a judge) recorded into a ``DirectoryStore`` on the
local disk that every worker shares. The models are scripted stand-ins for recorded ones that
wait a latency drawn from the request's hash in ``--latency-ms LO HI`` (50 to 500 ms by
default: seeded per run and call, so every cell waits the same) before answering. For each
worker count the script starts a real ``dask scheduler`` and that many ``dask worker`` processes
(``--nthreads 1 --no-nanny``) on 127.0.0.1, warms them up (the first batch imports the
pipeline on every worker), then times ``DaskExecutor.run_batch`` of the whole batch with
``--parallel`` runs in flight per worker. For reference, the same batch runs through the local
executor in this process with the same total concurrency (``--parallel`` x workers): with
high latency and async agents one process already overlaps many runs, so the local figure
says how much of the scaling is concurrency and how much is more processes. Every cell's root
hashes are checked equal, run by run. Run::

    python tests/benchmarks/batch_scaling.py                    # 1,000 runs on 1, 2, 4 workers
    python tests/benchmarks/batch_scaling.py --quick            # 200 runs on 1, 2 workers
    python tests/benchmarks/batch_scaling.py --runs 20 --workers 1 --quick   # smoke (CI)
    python tests/benchmarks/batch_scaling.py --json out.json

Needs ``pip install -e '.[dask]'``. The suite never asserts on time; compare the ratios within
one run, never absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from orch.batch._executor import BatchResult, BatchSpec, LocalExecutor
from orch.batch.dask import DaskExecutor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PIPELINE = str(FIXTURES / "batch_pipelines.py")


def _cluster_helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "orch_bench_dask_cluster", FIXTURES / "dask_cluster.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def inputs(n: int) -> list[dict[str, Any]]:
    return [{"question": f"Task {i:05d}: which of A, B, C or D is right?"} for i in range(n)]


def batch(n: int, store: Path, batch_id: str) -> BatchSpec:
    return BatchSpec.create(PIPELINE, inputs(n), store=str(store), seed=1, batch_id=batch_id)


def timed(executor: Any, spec: BatchSpec) -> tuple[float, BatchResult]:
    started = time.perf_counter()
    result: BatchResult = anyio.run(executor.run_batch, spec)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"batch {spec.batch_id} did not succeed: {result.summary()}")
    return seconds, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per batch (default 1000)")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default 1 2 4")
    parser.add_argument("--parallel", type=int, default=16, help="runs in flight per worker")
    parser.add_argument("--latency-ms", type=float, nargs=2, default=[50.0, 500.0])
    parser.add_argument("--quick", action="store_true", help="200 runs on 1 and 2 workers")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    runs = args.runs or (200 if args.quick else 1000)
    workers = args.workers or ([1, 2] if args.quick else [1, 2, 4])
    lo, hi = args.latency_ms
    # Read by the scripted models at call time, here and (inherited) in every worker.
    os.environ["ORCH_BATCH_LATENCY_MS"] = f"{lo},{hi}"
    clusters = _cluster_helper()
    rows: list[dict[str, Any]] = []
    hashes: list[list[str | None]] = []
    print(
        f"{runs} runs (2 model calls each, latency {lo:g}-{hi:g} ms), {args.parallel} in "
        f"flight per worker, on {os.cpu_count()} CPUs; runs/s (ratio to {workers[0]} worker(s))"
    )
    print(f"{'workers':>7}  {'dask runs/s':>11}  {'ratio':>6}  {'local at same concurrency':>26}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for w in workers:
            with clusters.dask_cluster(w, root / f"cluster-{w}") as cluster:
                dask = DaskExecutor(cluster.address, parallel=args.parallel)
                # Warm-up: every worker imports the pipeline (the probe) and makes first runs.
                timed(dask, batch(4 * w, root / f"warm-{w}", f"warm{w}"))
                seconds, result = timed(dask, batch(runs, root / f"dask-{w}", "bench"))
            local_seconds, local = timed(
                LocalExecutor(parallel=args.parallel * w), batch(runs, root / f"local-{w}", "bench")
            )
            rate, local_rate = runs / seconds, runs / local_seconds
            base = base or rate
            hashes += [[r.root_hash for r in result.items], [r.root_hash for r in local.items]]
            print(
                f"{w:>7}  {rate:>11.1f}  {rate / base:>5.2f}x  "
                f"{local_rate:>11.1f} (parallel {args.parallel * w})"
            )
            rows.append(
                {
                    "workers": w,
                    "runs": runs,
                    "parallel_per_worker": args.parallel,
                    "latency_ms": [lo, hi],
                    "dask_runs_per_s": round(rate, 2),
                    "ratio": round(rate / base, 3),
                    "ratio_to_workers": workers[0],
                    "dask_seconds": round(seconds, 3),
                    "local_parallel": args.parallel * w,
                    "local_runs_per_s": round(local_rate, 2),
                    "retried": len(result.retried),
                }
            )
    same = all(h == hashes[0] for h in hashes)
    print(f"root hashes identical, run by run, in every cell: {'yes' if same else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
