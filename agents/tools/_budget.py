"""Adaptive timeout budget allocation for a sequence of tool calls sharing one time budget.

Each tool keeps a latency history (the last ``window`` invoked calls); its p50 is the
expected latency, its p95 the slow case. A :class:`TimeBudget` knows the calls still planned.
When a call starts, it gets a share of the remaining budget in proportion to its expected
latency among the remaining planned calls, capped at its p95 times a safety factor (and at
the tool's own timeout); what a call does not use is still in the budget, so it flows to the
later calls. A call whose expected latency exceeds what is left is refused before it starts.

Inspired by the adaptive timeout budget allocation of "Bridging Protocol and Production"
(arXiv 2603.13417); the full text was not available. Our choices where the abstract is
silent: p50 is the expectation, a call gets at least its p50 when the budget has it (a
share below the expectation would only buy a timeout), and until ``min_samples`` latencies
are known a tool's prior expectation (``ToolPolicy.expected_s``) stands in for p50 and its
timeout for the cap.

Latencies are wall-clock facts, so an allocation is never recomputed in replay: the broker
records each call's allocation in its outcome, and replay serves it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.errors import ToolConfigError

__all__ = ["Allocation", "Estimate", "LatencyHistory", "TimeBudget", "allocate"]

_FLOOR_S = 1e-4


@dataclass(frozen=True)
class Estimate:
    """What the broker expects of one call of a tool, in seconds."""

    expected_s: float
    p95_s: float
    timeout_s: float
    samples: int


class LatencyHistory:
    """Latencies of one tool's invoked calls, newest ``window`` kept. Every call adds one,
    and only calls within a time budget read a quantile: the values are sorted when read,
    once per change."""

    __slots__ = ("_sorted", "_values", "min_samples")

    def __init__(self, window: int = 256, min_samples: int = 3) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self._sorted: list[float] | None = []
        self.min_samples = min_samples

    def add(self, seconds: float) -> None:
        if not 0 <= seconds < math.inf:  # NaN, infinities and negatives are no latency
            return
        self._values.append(seconds)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._values)

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile, or None with no samples."""
        values = self._sorted
        if values is None:
            values = self._sorted = sorted(self._values)
        if not values:
            return None
        rank = max(1, math.ceil(q * len(values)))
        return values[rank - 1]

    def estimate(self, prior_s: float, timeout_s: float, safety: float) -> Estimate:
        n = len(self._values)
        if n < self.min_samples:
            return Estimate(prior_s, timeout_s / safety, timeout_s, n)
        # A measured 0.0 is a fact, not a gap; the floor keeps caps and timeouts above zero.
        p50 = max(_FLOOR_S, self.quantile(0.5) or 0.0)
        p95 = max(p50, self.quantile(0.95) or 0.0)
        return Estimate(min(p50, timeout_s), p95, timeout_s, n)


@dataclass(frozen=True)
class Allocation:
    """The time one call may take, or why it may not start."""

    timeout_s: float
    """Seconds allocated (0 when refused)."""
    fits: bool
    remaining_s: float
    share_s: float
    cap_s: float
    expected_s: float

    def evidence(self) -> dict[str, float | bool]:
        r = 4
        return {
            "allocated_s": round(self.timeout_s, r),
            "remaining_s": round(self.remaining_s, r),
            "share_s": round(self.share_s, r),
            "cap_s": round(self.cap_s, r),
            "expected_s": round(self.expected_s, r),
            "fits": self.fits,
        }


def allocate(
    remaining_s: float, current: Estimate, later: Sequence[Estimate], safety: float
) -> Allocation:
    """The allocation of the next call given the budget left and the calls after it."""
    remaining_s = max(0.0, remaining_s)
    cap = min(current.p95_s * safety, current.timeout_s)
    if remaining_s < current.expected_s:
        return Allocation(0.0, False, remaining_s, 0.0, cap, current.expected_s)
    total = current.expected_s + sum(e.expected_s for e in later)
    share = remaining_s * current.expected_s / total if total > 0 else remaining_s
    timeout = min(max(share, current.expected_s), cap, remaining_s)
    return Allocation(timeout, True, remaining_s, share, cap, current.expected_s)


class TimeBudget:
    """One time budget shared by a sequence of tool calls.

    ``plan`` names the calls expected, in order (qualified tool names); a call that is not
    next in the plan is allowed and counted as an extra. The clock starts at the first
    allocation. Make one with :meth:`ToolBroker.budget` and pass it to each call.
    """

    def __init__(
        self,
        total_s: float,
        plan: Sequence[str] = (),
        *,
        safety: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(total_s) and total_s > 0):
            raise ToolConfigError(f"a time budget must be > 0 seconds, got {total_s}")
        if not safety >= 1:
            raise ToolConfigError(f"the budget's safety factor must be >= 1, got {safety}")
        self.total_s = float(total_s)
        self.plan = list(plan)
        self.safety = safety
        self._clock = clock
        self._started: float | None = None
        self._done = 0

    @property
    def remaining_s(self) -> float:
        if self._started is None:
            return self.total_s
        return max(0.0, self.total_s - (self._clock() - self._started))

    def start(self) -> None:
        """Start the clock (the broker does, as the first call's first stage begins)."""
        if self._started is None:
            self._started = self._clock()

    def _slot(self, tool: str) -> int | None:
        """Where ``tool`` is next in the plan still to come, if it is."""
        rest = self.plan[self._done :]
        return self._done + rest.index(tool) if tool in rest else None

    def pending(self, tool: str, *, retry: bool = False) -> list[str]:
        """The planned calls the current call must leave time for: those after its slot in
        the plan, or all still to come for an extra call or a retry (whose slot its first
        attempt used)."""
        slot = None if retry else self._slot(tool)
        return self.plan[slot + 1 :] if slot is not None else self.plan[self._done :]

    def take(
        self,
        tool: str,
        current: Estimate,
        estimate_of: Callable[[str], Estimate],
        *,
        retry: bool = False,
    ) -> Allocation:
        """Allocate the next call of ``tool`` (called by the broker as the call starts).

        A planned call moves the plan past its slot (planned calls it skipped are dropped),
        whether it fits or not; a retry keeps the plan where it is.
        """
        self.start()
        later = [estimate_of(name) for name in self.pending(tool, retry=retry)]
        allocation = allocate(self.remaining_s, current, later, self.safety)
        slot = None if retry else self._slot(tool)
        if slot is not None:
            self._done = slot + 1
        return allocation
