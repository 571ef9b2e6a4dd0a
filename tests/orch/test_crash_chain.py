"""SIGKILL at 50 random points across a lineage of runs, resumed again and again, sometimes
two resumes at once: the lineage still ends as an uninterrupted run would, and no effect that
had finished is ever issued again.

The driver (``tests/fixtures/crash_driver.py``) starts real ``orch run`` processes on
``tests/fixtures/crash_chain.py:chain`` (40 model calls of 30 ms), each resume continuing a
run drawn at random from the lineage so far, and kills them: before their first call, in a
call, just after one, in the replay of reused steps, at the run's end. The pipeline's "model"
logs every call as it starts and as it ends; the store says which calls finished (an
``effect`` event in a run's intact log). What is checked, exactly:

* each lineage ends with one run ``ok`` whose root hash is that of an uninterrupted run of
  the same question in another store; ``orch runs`` shows every other run of it
  ``superseded`` by that one (none left ``running`` or ``interrupted``: the lineage is
  finished); ``verify_store`` finds the whole store intact;
* every effect was recorded as made (not served) once, by the last call made for it; every
  earlier call for it was the last call of a process that was SIGKILLed with it in flight
  (before its record was written): the at-least-once window, and nothing more;
* every served effect names the run that made it; calls of two processes never interleave;
* a resume refused because another holds the lineage exits 2, in one line naming that
  holder, a live process it ran alongside; one with ``--wait`` is never refused for that;
  one that finds the lineage finished exits 2; nothing else fails, and no process prints a
  traceback.

Every check adds to one list of findings, and the test fails once listing them all. A
lineage that a kill finishes early (after its head said ok) is followed by a new one, so a
run may drive two. The second test plays the refusal and the wait one scene at a time; the
third gives every resume a fault (it forgets its lineage) and shows that the effect checks
catch what the root hash cannot.

The seed is printed (``-s``) and in every failure message; ``ORCH_CRASH_SEED=N`` repeats the
same draws (process timing still varies). Processes are forked from a server that has
imported orch (``tests/fixtures/orch_processes.py``: 50 kills in about 20 s, not 80);
``ORCH_CRASH_LAUNCH=exec`` starts each with ``python -m orch.cli`` instead.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from crash_chain import STEPS
from crash_driver import CHAIN, ChainCrasher, Launch, Lineage, Target
from orch_processes import launcher
from typer.testing import CliRunner

from orch import run
from orch._loader import load_pipeline
from orch.cli import app
from traces import EffectRecord, RunHead
from traces._eventlog import chained_events
from traces._open import open_store
from traces._runview import load_run_head
from traces._verify import verify_run, verify_store

SEED_ENV = "ORCH_CRASH_SEED"
KILLS = 50
STEP_IDS = [f"s{i:02d}" for i in range(STEPS)]


def _uninterrupted_root(question: str, where: Path) -> str:
    store = open_store(where)
    try:
        result = run(load_pipeline(CHAIN), {"question": question}, store=store)
    finally:
        store.close()
    assert result.ok, result.error
    return result.root_hash


def _log_lines(lineage: Lineage) -> list[dict[str, Any]]:
    if not lineage.log.path.exists():
        return []
    return [json.loads(line) for line in lineage.log.path.read_text().splitlines()]


class Findings(list[str]):
    """What the engine got wrong: every check adds to it and the test fails once, listing
    them all (one wrong exit code must not hide whether effects were issued again)."""

    def expect(self, ok: object, message: str) -> bool:
        if not ok:
            self.append(message)
        return bool(ok)


def _check_launches(launches: list[Launch], found: Findings) -> Counter[str]:
    """Each process was killed, finished ok, was refused (exit 2) naming a live holder it
    ran with, or found its lineage finished (exit 2); nothing else, and no traceback.
    Returns how many ended each way."""
    outcomes: Counter[str] = Counter()
    for launch in launches:
        text = launch.err()
        holder = launch.busy_holder()
        if launch.killed:
            outcomes["killed"] += 1
        elif launch.status == 0:
            outcomes["finished ok"] += 1
            found.expect("Traceback" not in text, f"a traceback:\n{launch.describe()}")
        elif holder is not None:
            outcomes["refused: busy"] += 1
            found.expect(
                launch.status == 2 and "Traceback" not in text,
                f"refused with exit {launch.status}"
                + " and a traceback" * ("Traceback" in text)
                + f", not exit 2 and one line:\n{launch.describe()}",
            )
            found.expect(not launch.wait, f"refused although --wait:\n{launch.describe()}")
            live = [p.pid for p in launch.peers if p.ended is None or p.ended > launch.started]
            found.expect(
                holder in live,
                f"refused naming pid {holder}, not a live peer {live}:\n{launch.describe()}",
            )
        elif launch.found_done():
            outcomes["found it finished"] += 1
            found.expect(
                launch.status == 2 and "Traceback" not in text,
                f"found its lineage finished: exit {launch.status}"
                + " and a traceback" * ("Traceback" in text)
                + f", not exit 2 and one line:\n{launch.describe()}",
            )
        else:
            outcomes[f"exit {launch.status}"] += 1
            found.append(f"unexpected end of a process:\n{launch.describe()}")
    return outcomes


def _check_lineage(
    store: Any, lineage: Lineage, members: list[RunHead], launches: list[Launch], found: Findings
) -> Counter[str]:
    """The effect log against the store (see the module docstring); returns counts."""
    counts: Counter[str] = Counter()
    lines = _log_lines(lineage)
    ids = {m.run_id for m in members}
    by_pid = {launch.pid: launch for launch in launches}
    where = f"lineage #{lineage.index} ({lineage.log.path})"

    # One process at a time: each process's calls form one unbroken stretch of the log.
    stretches = [
        ln["pid"] for i, ln in enumerate(lines) if i == 0 or lines[i - 1]["pid"] != ln["pid"]
    ]
    found.expect(
        len(stretches) == len(set(stretches)),
        f"{where}: calls of two processes interleave: {stretches}",
    )
    runs_of: dict[int, set[str]] = defaultdict(set)
    for ln in lines:
        runs_of[ln["pid"]].add(ln["run"])
    for pid, runs in runs_of.items():
        found.expect(len(runs) == 1 and runs <= ids, f"{where}: pid {pid} called for runs {runs}")

    # Which run made each effect, which runs served it (and from which run's log).
    made: dict[str, list[tuple[str, str]]] = defaultdict(list)
    held: dict[tuple[str, str], tuple[str, str | None]] = {}  # (run, step) -> (record, from)
    for head in members:
        for event in chained_events(store.read_events(head.run_id)):
            if event.get("type") != "effect":
                continue
            data = event["data"]
            held[head.run_id, event["step"]] = (data["record"], data.get("served_from"))
            if "served_from" not in data:
                made[event["step"]].append((head.run_id, data["record"]))
    for step, makers in sorted(made.items()):
        found.expect(
            len(makers) == 1, f"{where}: {step} was made again after it was recorded: {makers}"
        )
    found.expect(
        sorted(made) == STEP_IDS, f"{where}: never made: {sorted(set(STEP_IDS) - set(made))}"
    )
    # A served effect is the maker's record, and its served_from leads there: straight, or
    # through runs that served it in turn (the lineage's first run that holds it serves it).
    for (run_id, step), (record, origin) in sorted(held.items()):
        if origin is None:
            continue
        counts["served"] += 1
        trail = [run_id]
        while origin is not None and origin not in trail and (origin, step) in held:
            trail.append(origin)
            origin = held[origin, step][1]
        maker_run, maker_record = made[step][0] if made.get(step) else (None, None)
        found.expect(
            trail[-1] == maker_run and record == maker_record,
            f"{where}: run {run_id} served {step} ({record}) by way of {trail[1:]}, which does "
            f"not lead to run {maker_run} that made it ({maker_record})",
        )
        counts["served by way of a run that served it"] += len(trail) > 2

    # Every call but the last one of an effect was in flight when its process was killed.
    starts: dict[str, list[int]] = defaultdict(list)
    last_start: dict[int, int] = {}
    for i, ln in enumerate(lines):
        if ln["phase"] == "start":
            starts[ln["step"]].append(i)
            last_start[ln["pid"]] = i
    counts["calls"] = sum(len(c) for c in starts.values())
    for step in STEP_IDS:
        calls = starts[step]
        if step not in made or not calls:
            found.expect(bool(calls), f"{where}: {step} recorded as made but never called")
            continue
        run_id, key = made[step][0]
        record = EffectRecord.model_validate(store.get_value(key))
        last = lines[calls[-1]]
        found.expect(
            (last["run"], last["request"]) == (run_id, record.request),
            f"{where}: {step}: the last call {last} is not the one run {run_id} recorded "
            f"(request {record.request}): a finished effect was called again",
        )
        found.expect(
            any(
                ln["phase"] == "end" and ln["pid"] == last["pid"] and ln["step"] == step
                for ln in lines[calls[-1] :]
            ),
            f"{where}: {step}: the call recorded as made never ended",
        )
        for i in calls[:-1]:
            call = lines[i]
            launch = by_pid.get(call["pid"])
            found.expect(
                launch is not None and launch.killed and last_start[call["pid"]] == i,
                f"{where}: {step} was called again after a call by pid {call['pid']} that was "
                f"not in flight at a kill: "
                + (launch.describe() if launch else "a pid the driver did not start"),
            )
            found.expect(call["request"] == record.request, f"{where}: {step}: request changed")
            counts["repeated (in flight at a kill)"] += 1
            counts["of which the model had finished"] += any(
                ln["phase"] == "end" and ln["pid"] == call["pid"] and ln["step"] == step
                for ln in lines[i:]
            )
    return counts


def _where_killed(store: Any, members: list[RunHead], final: str) -> Counter[str]:
    """For each run that did not finish: the last event its intact log holds."""
    where: Counter[str] = Counter()
    for head in members:
        if head.run_id == final:
            continue
        lines = store.read_events(head.run_id)
        events = chained_events(lines)
        last = events[-1] if events else None
        kind = "no event" if last is None else last["type"]
        if last is not None and last["type"] == "step_end" and last["data"].get("reused"):
            kind = "step_end (reused)"
        where[kind + (" + torn line" if len(lines) > len(events) else "")] += 1
    return where


def _check_store(
    location: str, crasher: ChainCrasher, fresh: Path, found: Findings
) -> tuple[int, Counter[str], Counter[str]]:
    """The store after the lineages ended: verified, their statuses as ``orch runs`` shows
    them, their root hashes, their effects. Returns (runs, effect counts, kill points)."""
    store = open_store(location, create=False)
    try:
        report = verify_store(store)
        found.expect(report.ok, f"verify_store: {report.problems}")
        heads = {r: load_run_head(store, r) for r in store.run_ids()}
        shown = CliRunner().invoke(app, ["runs", "--store", location, "--json", "--limit", "9999"])
        assert shown.exit_code == 0, shown.output
        statuses = {h["run_id"]: h for h in json.loads(shown.stdout)}
        found.expect(set(statuses) == set(heads), "orch runs does not list every run")
        firsts = {lineage.first for lineage in crasher.lineages}
        found.expect(
            {h.lineage for h in heads.values()} == firsts,
            f"runs outside the lineages driven: {sorted(h.lineage or '' for h in heads.values())}",
        )
        effects: Counter[str] = Counter()
        where: Counter[str] = Counter()
        for lineage in crasher.lineages:
            assert lineage.final is not None and lineage.first is not None, "not finished"
            members = [h for h in heads.values() if h.lineage == lineage.first]
            final = verify_run(store, lineage.final)
            found.expect(final.ok and final.complete, f"final run: {final.problems}")
            expected = _uninterrupted_root(lineage.question, fresh / f"fresh-{lineage.index}")
            found.expect(
                lineage.root_hash == final.root_hash == expected,
                f"lineage #{lineage.index} ended with root hash {lineage.root_hash} (verified "
                f"{final.root_hash}), an uninterrupted run has {expected}",
            )
            # Its status as `orch runs` shows it: one ok, every other run superseded by it.
            for head in members:
                shown_head = statuses.get(head.run_id, {})
                want = (
                    ("ok", None) if head.run_id == lineage.final else ("superseded", lineage.final)
                )
                got = (shown_head.get("status"), shown_head.get("superseded_by"))
                found.expect(got == want, f"run {head.run_id}: status {got}, not {want}")
                if head.resumed_from is not None:
                    found.expect(
                        heads[head.resumed_from].lineage == lineage.first,
                        f"run {head.run_id} resumed {head.resumed_from} of another lineage",
                    )
            mine = [launch for launch in crasher.launches if launch.lineage == lineage.index]
            effects.update(_check_lineage(store, lineage, members, mine, found))
            where.update(_where_killed(store, members, lineage.final))
    finally:
        store.close()
    return len(heads), effects, where


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_fifty_kills_across_a_lineage_change_nothing(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = int(os.environ.get(SEED_ENV) or secrets.randbits(32))
    monkeypatch.delenv("ORCH_TEST_EFFECT_LOG", raising=False)
    monkeypatch.delenv("ORCH_TEST_STEP_SECONDS", raising=False)
    location = str(tmp_path / ("store" if kind == "dir" else "store.db"))
    procs = launcher()
    why = f"seed {seed}, {kind} store {location}, {procs.name} launcher; {SEED_ENV}={seed} repeats"
    print(f"\ncrash chain: {why}")
    work = tmp_path / "procs"
    work.mkdir()
    began = time.monotonic()
    crasher = ChainCrasher(procs, location, work, random.Random(seed), kills=KILLS, say=print)
    try:
        crasher.run()
    finally:
        procs.close()
    driven = time.monotonic() - began

    launches = crasher.launches
    found = Findings()
    outcomes = _check_launches(launches, found)
    # Two processes killed at once may take the count one past it.
    found.expect(crasher.kills >= KILLS, f"{crasher.kills} kills, not {KILLS}")
    runs, effects, where = _check_store(location, crasher, tmp_path, found)
    # Each killed process made one run at most (the ones that exited 0 made the others).
    where["no run yet (killed before its head)"] = crasher.kills - runs + outcomes["finished ok"]

    all_calls = [ln for lineage in crasher.lineages for ln in _log_lines(lineage)]
    resumes = sum(launch.resume is not None for launch in launches)
    pairs = sum(len(launch.peers) for launch in launches) // 2
    # A --wait resume that made calls while it had a peer: it waited, then took over.
    took_over = sum(
        launch.wait and bool(launch.peers) and any(ln["pid"] == launch.pid for ln in all_calls)
        for launch in launches
    )
    points = Counter(launch.target.kind for launch in launches if launch.killed)
    print(
        f"crash chain summary ({why}):\n"
        f"  {len(launches)} processes ({resumes} resumes, {pairs} pairs at once), "
        f"{crasher.kills} kills, {len(crasher.lineages)} lineage(s), {runs} runs\n"
        f"  outcomes: {dict(outcomes)}; --wait resumes that waited, then called: {took_over}\n"
        f"  kills aimed at: {dict(points)}\n"
        f"  where the kills left runs (last event of the log): {dict(where)}\n"
        f"  effects: {dict(effects)}; steps left for the last resume: {crasher.left_for_last}\n"
        f"  driven in {driven:.1f}s, checked in {time.monotonic() - began - driven:.1f}s"
    )
    assert not found, f"{len(found)} finding(s) ({why}):\n" + "\n".join(found)


@pytest.mark.slow
def test_a_resume_is_refused_or_waits_while_another_holds_the_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rules, one scene at a time: a resume while another holds the lineage is
    refused in one line naming it; one with --wait waits, takes over at once when the holder
    is killed, and continues; one with --wait that finds the lineage finished says so."""
    monkeypatch.delenv("ORCH_TEST_EFFECT_LOG", raising=False)
    monkeypatch.delenv("ORCH_TEST_STEP_SECONDS", raising=False)
    location = str(tmp_path / "store")
    procs = launcher()
    crasher = ChainCrasher(procs, location, tmp_path, random.Random(0))
    found = Findings()
    alone = Target("none")
    try:
        lineage = crasher.new_lineage()
        first = crasher.launch(lineage, None, False, alone)
        crasher.settle(first, calls=3)
        crasher.kill(first)
        (run_id,) = [head.run_id for head in crasher.members(lineage)]

        holder = crasher.launch(lineage, run_id, False, alone)
        crasher.settle(holder, calls=1)  # it holds the lease: it makes calls
        refused = crasher.launch(lineage, run_id, False, alone)
        crasher.settle(refused)
        lines = refused.err().strip().splitlines()
        found.expect(
            refused.busy_holder() == holder.pid
            and (
                refused.status != 2  # reported by _check_launches
                or (
                    len(lines) == 1
                    and lines[0].startswith(f"error: run {run_id} is being worked on by ")
                )
            ),
            f"not refused in one line naming pid {holder.pid}:\n{refused.describe()}",
        )

        waiter = crasher.launch(lineage, run_id, True, alone)
        crasher.settle(holder, calls=10)  # time for the waiter to reach the lease
        crasher.kill(holder)
        crasher.settle(waiter, calls=1)  # took over (the holder's process is gone)
        (resumed,) = [h.run_id for h in crasher.members(lineage) if h.resumed_from == run_id][:1]
        late = crasher.launch(lineage, resumed, True, alone)
        crasher.settle(waiter)
        crasher.settle(late)
    finally:
        procs.close()
    refused.peers, waiter.peers, late.peers = [holder], [holder], [waiter]
    found.expect(waiter.status == 0, f"the waiter did not finish ok:\n{waiter.describe()}")
    lines = late.err().strip().splitlines()
    found.expect(
        late.found_done() and (late.status != 2 or len(lines) == 1),
        f"a --wait resume that should find the lineage finished:\n{late.describe()}",
    )
    _check_launches(crasher.launches, found)
    found.expect(crasher.finished(lineage), "the lineage did not finish")
    if lineage.final is not None:
        _check_store(location, crasher, tmp_path, found)
    assert not found, f"{len(found)} finding(s):\n" + "\n".join(found)


@pytest.mark.slow
def test_the_checks_catch_a_resume_that_forgets_its_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same checks, on a resume that forgets what its lineage finished (a fault the
    fork server can give its children): it makes effects again, which the root hash alone
    would never show."""
    monkeypatch.delenv("ORCH_TEST_EFFECT_LOG", raising=False)
    monkeypatch.delenv("ORCH_TEST_STEP_SECONDS", raising=False)
    location = str(tmp_path / "store")
    procs = launcher("fork")
    env = {"ORCH_TEST_MUTATION": "forget"}
    crasher = ChainCrasher(procs, location, tmp_path, random.Random(0), env=env)
    try:
        lineage = crasher.new_lineage()
        first = crasher.launch(lineage, None, False, Target("none"))
        crasher.settle(first, calls=5)  # four calls recorded, the fifth in flight
        crasher.kill(first)
        (run_id,) = [head.run_id for head in crasher.members(lineage)]
        crasher.settle(crasher.launch(lineage, run_id, False, Target("none")))
    finally:
        procs.close()
    found = Findings()
    _check_launches(crasher.launches, found)
    assert crasher.finished(lineage), found
    _check_store(location, crasher, tmp_path, found)
    again = [f for f in found if "was made again" in f]
    assert len(again) >= 4, f"the checks missed a resume that forgot its lineage: {found}"
    assert not [f for f in found if "root hash" in f], found  # only the effect checks tell
