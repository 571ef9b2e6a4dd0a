"""The canonical bytes of the broker's requests and outcomes, made without the generic walk.

Every tool call records its request and its :class:`~agents.tools.ToolOutcome`, and
:func:`traces.canonical_bytes` would check and dump each through its generic path (a walk of
every field, a pydantic dump). Most of both is the broker's own making and known to be plain
JSON already; only the arguments and the tool's content need a look. The functions here give
exactly ``canonical_bytes(value)`` (the record's keys are hashes of these bytes; a test pins
them to it on generated values) and fall back to it for anything out of the common case: a
failure, a budget, a call timeout, a value that is not plain JSON of builtin types.

This module must never produce bytes that ``canonical_bytes`` would not, nor accept a value
``canonical_bytes`` refuses.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from traces import canonical_bytes, to_canonical

if TYPE_CHECKING:
    from agents.tools._broker import ToolOutcome

__all__ = ["is_plain", "outcome_bytes", "request_bytes"]

_SORTED = orjson.OPT_SORT_KEYS
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def is_plain(value: Any) -> bool:
    """True when ``value`` is JSON data made only of the builtin types themselves (dict with
    str keys, list, str, int within 64 bits, finite float, bool, None): the values that a
    JSON-mode dump and the canonical walk both leave exactly as they are."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if t is float:
        return math.isfinite(value)
    # Loops with the common leaves inline, not all(...): a call per value (a generator's
    # frame, or this function's) costs more than the check itself.
    if t is dict:
        for k, v in value.items():
            tv = type(v)
            if type(k) is not str:
                return False
            if not (tv is str or tv is bool or v is None or is_plain(v)):
                return False
        return True
    if t is list:
        for v in value:
            tv = type(v)
            if not (tv is str or tv is bool or v is None or is_plain(v)):
                return False
        return True
    return False


def request_bytes(request: dict[str, Any]) -> bytes:
    """``canonical_bytes(request)`` for the request of one attempt (``tool``, ``arguments``,
    ``principal``, ``attempt`` and perhaps ``timeout_s``)."""
    principal = request["principal"]
    if (
        len(request) == 4
        and type(request["tool"]) is str
        and type(request["attempt"]) is int
        and type(principal) is dict
        and is_plain(principal)
    ):
        # The arguments are the caller's: they take the canonical walk (which refuses what
        # has no canonical form, naming where it sits); the rest is plain already.
        plain = dict(request)
        plain["arguments"] = to_canonical(request["arguments"], "$.arguments")
        return orjson.dumps(plain, option=_SORTED)
    return canonical_bytes(request)


def outcome_bytes(outcome: ToolOutcome) -> bytes:
    """``canonical_bytes(outcome)`` for one attempt's outcome."""
    result = outcome.result
    timeout = outcome.timeout_s
    if (
        result is not None
        and outcome.error is None
        and outcome.allocation is None
        and outcome.next_attempt_in_s is None
        and (timeout is None or (type(timeout) is float and math.isfinite(timeout)))
        and type(outcome.tool) is str
        and type(outcome.ok) is bool
        and type(outcome.invoked) is bool
        and (outcome.version is None or type(outcome.version) is str)
        and type(result.is_error) is bool
        and is_plain(result.content)
        and is_plain(result.structured)
    ):
        # Every field of both models, as their JSON-mode dump has them.
        return orjson.dumps(
            {
                "tool": outcome.tool,
                "ok": outcome.ok,
                "result": {
                    "content": result.content,
                    "structured": result.structured,
                    "is_error": result.is_error,
                },
                "error": None,
                "invoked": outcome.invoked,
                "version": outcome.version,
                "timeout_s": timeout,
                "allocation": None,
                "next_attempt_in_s": None,
            },
            option=_SORTED,
        )
    return canonical_bytes(outcome)
