"""pytest plugin (entry point ``pytest11``): fixtures for testing orch pipelines.

Fixtures:

* ``orch_store``: a fresh in-memory artifact store per test.
* ``shuffled_completion``: a factory ``(seed, max_delay=0.002) -> ShuffledCompletion``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from traces import MemoryStore

from . import ShuffledCompletion

__all__ = ["orch_store", "shuffled_completion"]


@pytest.fixture
def orch_store() -> MemoryStore:
    """A fresh in-memory store."""
    return MemoryStore()


@pytest.fixture
def shuffled_completion() -> Callable[..., ShuffledCompletion]:
    """Make a completion-order shuffler for ``orch.arun(..., perturb=...)``."""
    return ShuffledCompletion
