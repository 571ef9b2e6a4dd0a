"""pytest plugin (entry point ``pytest11``): fixtures for testing orch pipelines.

Fixtures:

* ``orch_store``: a fresh in-memory artifact store per test.
* ``shuffled_completion``: a factory ``(seed, max_delay=0.002) -> ShuffledCompletion``.
* ``replays_clean``: :func:`orch.testing.assert_replays_clean` with ``store`` defaulting to
  the test's ``orch_store``: ``replays_clean(result, pipeline=p)``.

The scripted-model fixture (``scripted_models``) is ``agents``' own plugin,
:mod:`agents.testing`: the engine must not import the package that provides models. Loaded
into every pytest session of an environment where orch is installed, so this module must
stay cheap to import and must never start anything at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from orch._pipeline import Pipeline
from orch._runtime import RunResult
from orch.testing import ShuffledCompletion, assert_replays_clean
from traces import ArtifactStore, MemoryStore

__all__ = ["orch_store", "replays_clean", "shuffled_completion"]


@pytest.fixture
def orch_store() -> MemoryStore:
    """A fresh in-memory store."""
    return MemoryStore()


@pytest.fixture
def shuffled_completion() -> Callable[..., ShuffledCompletion]:
    """Make a completion-order shuffler for ``orch.arun(..., perturb=...)``."""
    return ShuffledCompletion


@pytest.fixture
def replays_clean(orch_store: MemoryStore) -> Callable[..., RunResult]:
    """``replays_clean(run, *, pipeline, store=orch_store, services=None) -> RunResult``:
    replay ``run`` offline and fail the test with the first divergence when it does not
    reproduce its root hash (sync tests; async tests await
    :func:`orch.testing.aassert_replays_clean`)."""

    def check(
        run: RunResult | str,
        *,
        pipeline: Pipeline,
        store: ArtifactStore | None = None,
        services: Mapping[str, Any] | None = None,
    ) -> RunResult:
        __tracebackhide__ = True
        return assert_replays_clean(
            run, store=orch_store if store is None else store, pipeline=pipeline, services=services
        )

    return check
