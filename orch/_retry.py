"""Retry policy of a node: how many attempts, which errors, what backoff.

Only errors the policy names as retryable are retried (by default :class:`RetryableError`,
which includes step timeouts). A bug in an agent (``ValueError``, ``KeyError`` ...) is never
retried: retrying a deterministic failure only repeats it. Backoff has no jitter, because
jitter would draw from global randomness; the wait is wall-clock time and is never recorded
in a hashed record.

A replayed effect's failure comes back as :class:`~orch.errors.RecordedEffectError` naming
the recorded type, so :func:`retryable` matches it by that name: a step the original run
retried is retried again in replay, and its attempts replay to the same records.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from orch.errors import RecordedEffectError, RetryableError, type_path

__all__ = ["RetryPolicy", "call_with_retry", "retryable"]

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
        retry=retry_if_exception(lambda exc: retryable(exc, policy.retry_on)),
        reraise=True,
        sleep=anyio.sleep,
    )
    n = 0
    async for try_ in retrying:
        with try_:
            n += 1
            result = await attempt(n)
    return result, n


def _recorded_name(cls: type) -> str:
    """``cls`` as a record names an error of it (``orch._effect_path.type_name``)."""
    return cls.__qualname__ if cls.__module__ == "builtins" else type_path(cls)


def _loaded_class(name: str) -> type | None:
    """The class a recorded type name names, among the modules already imported (nothing is
    imported here: a name read from a record must not run code), or None."""
    if "." not in name:
        named = getattr(builtins, name, None)
        return named if isinstance(named, type) else None
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        found: object = module
        for attr in parts[cut:]:
            found = getattr(found, attr, None)
        return found if isinstance(found, type) else None
    return None


def retryable(exc: BaseException, retry_on: tuple[type[BaseException], ...]) -> bool:
    """Whether a policy retrying ``retry_on`` retries ``exc``. A replayed failure is matched
    by the type its record names: the same name as one of ``retry_on``, or a loaded class
    that is a subclass of one."""
    if isinstance(exc, retry_on):
        return True
    if not isinstance(exc, RecordedEffectError):
        return False
    recorded = exc.original_type
    if any(recorded == _recorded_name(t) for t in retry_on):
        return True
    cls = _loaded_class(recorded)
    return cls is not None and issubclass(cls, retry_on)
