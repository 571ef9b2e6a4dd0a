"""Checking an evaluation's own runs: verify and replay a seeded sample of them offline.

An evaluation's figures are only as good as the runs behind them. :func:`audit_runs` takes a
seeded sample of (pipeline, run id) pairs, verifies each run's record
(:func:`traces.verify_run`: hashes, event chain, Merkle root) and replays it with no live
effect (:func:`orch.testing.aassert_replays_clean`: the same decisions and root hash, or the
first divergence). The reproductions print and save what it finds; any problem is a defect.

This module never runs a task for the first time, and never changes the store beyond what a
verified replay reads.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orch import Pipeline
from orch.testing import aassert_replays_clean
from traces import ArtifactStore, verify_run

__all__ = ["Audit", "audit_runs"]


@dataclass
class Audit:
    """What :func:`audit_runs` found."""

    sampled: int = 0
    verified: int = 0
    """Runs whose record verified with no problem."""
    replayed: int = 0
    """Runs that replayed to the same root hash."""
    problems: list[str] = field(default_factory=list)
    """One line per run that failed either check: the run id and the first problem."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return (
            f"{self.sampled} sampled runs: {self.verified} verified, {self.replayed} replayed "
            f"offline to the same root hash, {len(self.problems)} problems"
        )


async def audit_runs(
    store: ArtifactStore,
    runs: Sequence[tuple[Pipeline, str]],
    services: Mapping[str, Any],
    sample: int,
    seed: int = 0,
) -> Audit:
    """Verify and replay ``sample`` of ``runs`` (pipeline, run id), drawn with
    ``random.Random(seed)`` from the runs sorted by id; ``services`` are those the runs
    were given (the replay builds its requests through them, and calls nothing)."""
    if sample < 0:
        raise ValueError(f"sample is {sample}; fix: use a sample size >= 0")
    ordered = sorted(runs, key=lambda r: r[1])
    chosen = random.Random(seed).sample(ordered, min(sample, len(ordered)))
    out = Audit(sampled=len(chosen))
    for pipeline, run_id in chosen:
        report = verify_run(store, run_id, ledger=False)
        if not report.ok:
            first = report.problems[0]
            out.problems.append(f"{run_id}: does not verify: {first.subject}: {first.detail}")
            continue
        out.verified += 1
        try:
            await aassert_replays_clean(run_id, store=store, pipeline=pipeline, services=services)
        except AssertionError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            out.problems.append(f"{run_id}: " + " ".join(lines[:3]))
            continue
        out.replayed += 1
    return out
