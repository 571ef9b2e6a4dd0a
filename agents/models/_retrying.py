"""Retrying provider calls: 429 (honouring retry-after), 5xx and timeouts; never other 4xx.

Both SDKs raise errors with a ``status_code`` and the HTTP ``response``; a retryable error is
retried with exponential backoff, or after the server's ``retry-after`` when it sends one
(capped). Anything else (a bad request, a refused key, a malformed answer) fails at once:
retrying a deterministic failure only spends money. The SDKs' own retries are switched off
so that this is the only policy, and it is the same for every provider.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anthropic
import anyio
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

__all__ = ["classify", "retry_after", "with_retries"]

T = TypeVar("T")

_TIMEOUTS = (openai.APITimeoutError, anthropic.APITimeoutError, TimeoutError)
_CONNECTION = (openai.APIConnectionError, anthropic.APIConnectionError)
MAX_RETRY_AFTER = 60.0


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def classify(exc: BaseException) -> bool:
    """True when ``exc`` is worth retrying: 429, 5xx, a timeout or a dropped connection."""
    if isinstance(exc, _TIMEOUTS + _CONNECTION):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _wait(base: float, cap: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER)
        # No jitter: jitter would need global randomness, and the wait is never recorded.
        return float(min(cap, base * 2 ** (state.attempt_number - 1)))

    return wait


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    base_wait: float = 0.5,
    max_wait: float = 20.0,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    attempts: list[int] | None = None,
) -> T:
    """Run ``call`` with the policy above. ``attempts`` (a one-item list) receives how many
    attempts were made, also when the call finally fails."""
    count = attempts if attempts is not None else [0]
    count[0] = 0
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        retry=retry_if_exception(classify),
        wait=_wait(base_wait, max_wait),
        reraise=True,
        sleep=sleep,
    ):
        with attempt:
            count[0] += 1
            result = await call()
    return result
