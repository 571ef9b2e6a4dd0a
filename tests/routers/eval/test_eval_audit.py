"""Auditing an evaluation's runs: a seeded sample verified and replayed, with a tampered or
diverging run reported by id."""

from __future__ import annotations

import pytest
from test_eval_harness import pipe, tiny

from routers import baselines
from routers.eval import audit_runs, evaluate, recorded_hub
from traces import MemoryStore
from traces._runview import load_run_view


async def test_a_clean_sample_verifies_and_replays() -> None:
    store = MemoryStore()
    pipeline = pipe(baselines.single.with_config(model="cheap"))
    report = await evaluate(pipeline, tiny(), store)
    runs = [(pipeline, r.run_id) for r in report.results]
    audit = await audit_runs(store, runs, {"models": recorded_hub(tiny())}, 5, seed=3)
    assert audit.ok and (audit.sampled, audit.verified, audit.replayed) == (5, 5, 5)
    assert audit.line() == (
        "5 sampled runs: 5 verified, 5 replayed offline to the same root hash, 0 problems"
    )
    again = await audit_runs(store, list(reversed(runs)), {"models": recorded_hub(tiny())}, 5, 3)
    assert again == audit  # the sample depends on the seed, not the order given
    everything = await audit_runs(store, runs, {"models": recorded_hub(tiny())}, 100)
    assert everything.sampled == len(runs)
    with pytest.raises(ValueError, match="sample size >= 0"):
        await audit_runs(store, runs, {}, -1)


async def test_problems_name_the_run() -> None:
    store = MemoryStore()
    pipeline = pipe(baselines.single.with_config(model="cheap"))
    report = await evaluate(pipeline, tiny(), store)
    first, second = report.results[0].run_id, report.results[1].run_id
    (step,) = load_run_view(store, first).steps.values()
    store._tamper(step.record.output, b'"another answer"')  # a recorded output changed
    # Replayed with another model: the requests differ from the recorded ones.
    other = pipe(baselines.single.with_config(model="dear"))
    audit = await audit_runs(
        store, [(pipeline, first), (other, second)], {"models": recorded_hub(tiny())}, 2
    )
    assert not audit.ok and audit.verified == 1 and audit.replayed == 0
    verify, replay = sorted(audit.problems)
    assert verify.startswith(f"{first}: does not verify: ")
    assert replay.startswith(f"{second}: run {second} of pipeline 'single-model' does not replay")
