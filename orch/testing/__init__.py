"""Testing helpers for users of orch: a completion-order shuffler and determinism checks,
a manual clock for leases (:class:`ManualClock`), and the replay assertion
(:func:`assert_replays_clean`: a recorded run must replay offline to its own root hash).

Like trio's testing package, these are public API: use them to prove that your own
pipelines' root hashes do not depend on scheduling. Nothing here is used by a real run.
"""

from __future__ import annotations

from orch.testing._clock import ManualClock
from orch.testing._replay import aassert_replays_clean, assert_replays_clean
from orch.testing._shuffle import ShuffledCompletion, assert_order_independent

__all__ = [
    "ManualClock",
    "ShuffledCompletion",
    "aassert_replays_clean",
    "assert_order_independent",
    "assert_replays_clean",
]
