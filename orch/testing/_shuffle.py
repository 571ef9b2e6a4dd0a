"""Completion-order shuffling and the determinism check built on it: a recorded root hash
must not depend on which step finished first. Nothing here is used by a real run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import anyio

from orch._pipeline import Pipeline
from orch._runtime import RunResult, arun
from traces import ArtifactStore, MemoryStore

__all__ = ["ShuffledCompletion", "assert_order_independent"]


class ShuffledCompletion:
    """A ``perturb`` hook for :func:`orch.arun`: each step waits a random delay before it
    records its result, so steps complete in a seeded random order.

    The delays come from a private RNG seeded here, never from the run seed, so they change
    the order of completion and nothing else.
    """

    def __init__(self, seed: int, max_delay: float = 0.002) -> None:
        self._rng = random.Random(seed)
        self.max_delay = max_delay
        self.order: list[str] = []
        """Step ids in the order they completed (to show the shuffle happened)."""

    async def __call__(self, step_id: str) -> None:
        await anyio.sleep(self._rng.random() * self.max_delay)
        self.order.append(step_id)


async def assert_order_independent(
    pipeline: Pipeline,
    inputs: Mapping[str, Any],
    *,
    seed: int = 0,
    shuffles: int = 5,
    store: ArtifactStore | None = None,
    services: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run once plainly and ``shuffles`` times with shuffled completion; all root hashes must
    be equal. Returns the plain run's result; raises AssertionError naming the shuffle seed."""
    store = store or MemoryStore()
    baseline = await arun(pipeline, inputs, store=store, seed=seed, services=services)
    for shuffle_seed in range(shuffles):
        shuffled = await arun(
            pipeline,
            inputs,
            store=store,
            seed=seed,
            perturb=ShuffledCompletion(shuffle_seed),
            services=services,
        )
        if shuffled.root_hash != baseline.root_hash:
            raise AssertionError(
                f"pipeline {pipeline.name!r}: root hash depends on completion order "
                f"(shuffle seed {shuffle_seed}: {shuffled.root_hash} != {baseline.root_hash})"
            )
    return baseline
