"""Rate limits per principal and tool: a token bucket for each (tenant, principal, tool).

A :class:`RateLimit` allows ``burst`` calls at once and refills at ``per_second``. A call that
finds the bucket empty is refused with the time until the next token, which the broker
reports as ``retry_after_s`` of a ``rate_limited`` error. The clock is injectable so tests
need not sleep. Whether a call was limited depends on wall-clock time, so the broker records
the verdict in the call's outcome and replay serves it rather than asking again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from agents.errors import ToolConfigError

__all__ = ["RateLimit", "RateLimiter"]

_EPSILON = 1e-9


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second > 0):
            raise ToolConfigError(f"RateLimit.per_second must be > 0, got {self.per_second}")
        if self.burst < 1:
            raise ToolConfigError(f"RateLimit.burst must be >= 1, got {self.burst}")


class RateLimiter:
    """Token buckets keyed by (tenant, principal id, tool)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def acquire(self, key: tuple[str, str, str], limit: RateLimit) -> float | None:
        """Take a token: None when granted, else seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.per_second)
        # A caller that waited exactly the retry-after it was told must get its token,
        # whatever the floating-point rounding of the refill made of it.
        if tokens >= 1.0 - _EPSILON:
            self._buckets[key] = (max(0.0, tokens - 1.0), now)
            return None
        self._buckets[key] = (tokens, now)
        # Rounded up, never down, so that waiting the advertised time is always enough.
        return math.ceil((1.0 - tokens) / limit.per_second * 1e6) / 1e6
