"""``orch ui`` page latency against store size: the runs list, a deep page, a text-filtered
page and a run page (first view, which verifies the run, then cached) on directory and SQLite
stores of 1,000, 10,000 and 100,000 runs, through the real app (``orch.ui.create_app``) and
Starlette's TestClient (in process: no socket, the same handlers, templates and middleware).

    python tests/benchmarks/ui_pages.py                       # 1,000, 10,000, 100,000 runs
    python tests/benchmarks/ui_pages.py --sizes 1000,3000 --repeat 3   # smoke
    python tests/benchmarks/ui_pages.py --warm   # servers started as orch ui starts them

The stores hold runs that verify. Making 100,000 runs through the engine takes about an hour
here, so a few template runs are made for real (a one-step pipeline whose router decides:
"escalated" in one run in three, one run a word no other has), and every other run is a clone
of one: the same records (so the same root hash), its own run id, its own event log (the
template's events with the run id replaced, re-chained and re-hashed as :class:`EventLog`
does), its own ledger start and seal entries (appended through :class:`traces.Ledger`, naming
its own first and last event) and its own head (re-sealed), with a start time one second after
the run before. A sample of the clones is checked with :func:`traces.verify_run` before any
timing; the script stops if one fails.

Per store and size: the time to write the runs; a new server's first requests, once each (in
seconds): the runs list (which brings the store's index up to date: the directory store's
reads every head written since, from its journal; no runs' decisions are read but those of its
own page), a text filter (which reads every run's decisions, once), a run page (whose
verification reads the whole ledger, once per server); then the median of
``--repeat`` requests of each page: ``/`` (50 runs), ``/?after=`` a cursor half way down,
``/?q=`` the common word and the rare one, and ``/runs/RUN`` for a run half way down: its first
view (verification included; a different run each time) and a cached view. The last column is
the ratio of the largest store to the smallest. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.testclient import TestClient

from orch import Context, PipelineBuilder, agent
from orch._runtime import run
from orch.ui import UiSettings, create_app
from traces import DirectoryStore, RunHead, SQLiteStore, ledger_of, verify_run
from traces._eventlog import event_body_hash, event_line
from traces._ledger_entries import SealEntry, StartEntry, parse_entry
from traces._runindex import IndexedRun, encode_cursor
from traces._store import ArtifactStore

ONE_OFF = ("first list", "first text", "first run page")
PAGES = ("list", "deep page", "text (common)", "text (rare)", "run (first view)", "run (cached)")


class Q(BaseModel):
    x: int


@agent(name="bench-router", version="1")
async def route(q: Q, ctx: Context) -> Q:
    escalate = q.x % 3 == 0
    reason = "zanzibar" if q.x < 0 else ("sigma 0.41: escalated" if escalate else "all agree")
    ctx.decide(
        candidates=["small", "large"], chosen="large" if escalate else "small", reason=reason
    )
    return q


def _pipeline() -> Any:
    p = PipelineBuilder("qa")
    p.node("r", route, x=p.input("x", int))
    return p.build()


class Template:
    """One real run: what a clone copies (its head, events, ledger start and seal)."""

    def __init__(self, store: ArtifactStore, run_id: str) -> None:
        raw = store.read_run_head(run_id)
        assert raw is not None
        self.head = orjson.loads(raw)
        self.events = [orjson.loads(line) for line in store.read_events(run_id)]
        entries = [parse_entry(e) for e in store.ledger_read()]
        self.start = next(e for e in entries if isinstance(e, StartEntry) and e.run == run_id)
        self.seal = next(e for e in entries if isinstance(e, SealEntry) and e.run == run_id)

    def clone(self, store: ArtifactStore, run_id: str, started_at: float) -> None:
        """Write a run that is this one under ``run_id``, as the engine would have."""
        prev = None
        lines = []
        for event in self.events:
            event = {k: v for k, v in event.items() if k != "hash"}
            event["run"], event["prev"] = run_id, prev
            event["hash"] = prev = event_body_hash(event)
            lines.append(event_line(event))
        first = orjson.loads(lines[0])["hash"]
        ledger = ledger_of(store)
        for line in lines:
            store.append_event(run_id, line)
        ledger.append(
            self.start.model_copy(update={"run": run_id, "lineage": run_id, "start_event": first})
        )
        ledger.append(self.seal.model_copy(update={"run": run_id, "event_head": prev}))
        head = dict(self.head)
        head.pop("hash", None)
        head |= {
            "run_id": run_id,
            "lineage": run_id,
            "event_head": prev,
            "started_at": started_at,
            "finished_at": started_at + 0.5,
        }
        store.write_run_head(run_id, RunHead.model_validate(head).to_bytes())


def build(kind: str, root: Path, n: int) -> tuple[ArtifactStore, list[str], float]:
    store: ArtifactStore = (
        DirectoryStore(root / "store") if kind == "directory" else SQLiteStore(root / "s.db")
    )
    began = time.perf_counter()
    pipeline = _pipeline()
    templates = []
    for x in (-1, 0, 1, 2):  # the rare word, escalated, all agree twice
        result = run(pipeline, {"x": x}, store=store, seed=abs(x))
        assert result.ok
        templates.append(Template(store, result.run_id))
    rare, common = templates[0], templates[1:]
    ids = []
    for i in range(n - len(templates)):
        run_id = f"bench-{i:07d}"
        template = rare if i == n // 3 else common[i % 3]
        template.clone(store, run_id, 1_700_000_000.0 + i)
        ids.append(run_id)
    store.flush()
    wrote = time.perf_counter() - began
    for run_id in ids[:: max(1, len(ids) // 20)]:
        report = verify_run(store, run_id)
        if not report.ok:
            raise SystemExit(f"clone {run_id} does not verify: {report.problems[:3]}")
    return store, ids, wrote


def timed(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def get(client: TestClient, url: str, *, want: str | None = None) -> None:
    response = client.get(url)
    if response.status_code != 200 or (want is not None and want not in response.text):
        raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")


def measure(store: ArtifactStore, ids: list[str], repeat: int, warm: bool) -> dict[str, float]:
    """One-off times (one server's first requests, in seconds) and the pages' medians (ms).
    With ``warm``, the server starts as ``orch ui`` does (its lifespan: the warm-up of
    :mod:`orch.ui._warm`), and its first requests come once the warm-up ended."""
    client = TestClient(create_app(UiSettings(store=store)), base_url="http://127.0.0.1:8765")
    extra: dict[str, float] = {}
    if warm:
        began = time.perf_counter()
        client.__enter__()
        client.app.state.warm.done.wait()  # type: ignore[attr-defined]
        extra["warm-up"] = time.perf_counter() - began
    middle = ids[len(ids) // 2]
    raw = store.read_run_head(middle)
    assert raw is not None
    head = RunHead.model_validate_json(raw)
    cursor = encode_cursor(
        IndexedRun(middle, "", "", 0, head.started_at, None, None, None, None, None, 0, "")
    )
    out = {
        **extra,
        "first list": timed(lambda: get(client, "/"), 1) / 1000,
        "first text": timed(lambda: get(client, "/?q=escalated"), 1) / 1000,
        "first run page": timed(lambda: get(client, f"/runs/{middle}", want="verified"), 1) / 1000,
        "list": timed(lambda: get(client, "/"), repeat),
        "deep page": timed(lambda: get(client, f"/?after={cursor}"), repeat),
        "text (common)": timed(lambda: get(client, "/?q=escalated"), repeat),
        "text (rare)": timed(lambda: get(client, "/?q=zanzibar", want="bench-"), repeat),
    }
    # First views: a different run each time (none seen before), verification included.
    fresh = iter(ids[len(ids) // 2 + 1 :])
    out["run (first view)"] = timed(
        lambda: get(client, f"/runs/{next(fresh)}", want="verified"), repeat
    )
    out["run (cached)"] = timed(lambda: get(client, f"/runs/{middle}"), repeat)
    if warm:
        client.__exit__(None, None, None)
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--kinds", default="directory,sqlite")
    parser.add_argument(
        "--warm", action="store_true", help="start each server as orch ui does (its warm-up)"
    )
    args = parser.parse_args()
    one_off = (("warm-up",) if args.warm else ()) + ONE_OFF
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for kind in kinds:
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                store, ids, wrote = build(kind, Path(tmp), n)
                results[(kind, n)] = got = measure(store, ids, args.repeat, args.warm)
                print(
                    f"{kind:9} n={n:>7,}  wrote {wrote:6.1f} s  load {os.getloadavg()[0]:.2f}  "
                    + "  ".join(f"{k} {got[k]:.2f} s" for k in one_off)
                    + "  "
                    + "  ".join(f"{k} {got[k]:.1f} ms" for k in PAGES),
                    flush=True,
                )
                store.close()
    lo, hi = min(sizes), max(sizes)
    print("\nms per request (first: once; the others: median of the timed requests)")
    print("| store | page | " + " | ".join(f"{n:,}" for n in sizes) + f" | {hi:,} / {lo:,} |")
    print("|---|---|" + "---:|" * (len(sizes) + 1))
    for kind in kinds:
        for page in (*one_off, *PAGES):
            cells = [results[(kind, n)][page] * (1000 if page in one_off else 1) for n in sizes]
            ratio = results[(kind, hi)][page] / results[(kind, lo)][page]
            print(
                f"| {kind} | {page} | "
                + " | ".join(f"{c:.1f}" for c in cells)
                + f" | {ratio:.1f}x |"
            )


if __name__ == "__main__":
    main()
