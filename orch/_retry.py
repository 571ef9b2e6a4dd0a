"""Retry policy of a node: how many attempts, which errors, what backoff.

Only errors the policy names as retryable are retried (by default :class:`RetryableError`,
which includes step timeouts). A bug in an agent (``ValueError``, ``KeyError`` ...) is never
retried: retrying a deterministic failure only repeats it. Backoff has no jitter, because
jitter would draw from global randomness; the wait is wall-clock time and is never recorded
in a hashed record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from orch.errors import RetryableError, type_path

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How a node's step is retried."""

    max_attempts: int = 1
    """Total attempts, the first included; 1 means no retry."""
    retry_on: tuple[type[BaseException], ...] = (RetryableError,)
    initial_wait: float = 0.05
    max_wait: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts is {self.max_attempts}; fix: use 1 (no retry) or more"
            )

    def spec(self) -> dict[str, Any]:
        """The policy as hashed into the pipeline spec."""
        return {
            "max_attempts": self.max_attempts,
            "retry_on": sorted(type_path(t) for t in self.retry_on),
        }


async def call_with_retry(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
) -> tuple[T, int]:
    """Run ``attempt(n)`` (n from 1) under ``policy``; return (result, attempts used)."""
    if policy.max_attempts == 1:
        return await attempt(1), 1
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait),
        retry=retry_if_exception_type(policy.retry_on),
        reraise=True,
        sleep=anyio.sleep,
    )
    n = 0
    async for try_ in retrying:
        with try_:
            n += 1
            result = await attempt(n)
    return result, n
