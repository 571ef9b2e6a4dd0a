"""The broker's own encodings of its requests and outcomes are ``canonical_bytes``, byte for
byte, and refuse what it refuses with the same error.

A recorded effect's keys are hashes of these bytes, so a difference would change the root
hash of every run with a tool call. Hypothesis draws arguments, principals, tool content and
structured results from JSON values and from what JSON cannot carry (NaN, infinities, ints
beyond 64 bits, tuples, sets, bytes, int keys, str subclasses), and outcomes of every shape
(failures, budgets, timeouts), and compares the broker's bytes with ``canonical_bytes``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.errors import ToolError
from agents.tools import Principal, ToolOutcome, ToolResult
from agents.tools._encoding import is_plain, outcome_bytes, request_bytes
from traces import canonical_bytes


class Colour(str, enum.Enum):  # noqa: UP042 - the mixin whose str() is not its value
    RED = "red"


class Label(str):
    """A str subclass: canonical encoding takes str(value), which an enum mixin changes."""


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**66), 2**66),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=4),
    st.sampled_from([Colour.RED, Label("x"), b"raw", 1.5]),
)
KEYS = st.one_of(st.text(max_size=3), st.integers(0, 3))
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(KEYS, inner, max_size=3),
        st.frozensets(st.integers(0, 3), max_size=2),
    ),
    max_leaves=8,
)
PLAIN = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=4),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


def outcome_of(fast: Callable[[Any], bytes], value: Any) -> None:
    """``fast(value)`` is ``canonical_bytes(value)``, or raises the same error."""
    expected: bytes | Exception
    try:
        expected = canonical_bytes(value)
    except Exception as exc:
        expected = exc
    if isinstance(expected, Exception):
        with pytest.raises(type(expected), match=re.escape(str(expected))):
            fast(value)
    else:
        assert fast(value) == expected


@settings(max_examples=300, deadline=None)
@given(
    arguments=st.dictionaries(st.text(max_size=4), VALUES | PLAIN, max_size=4),
    tool=st.sampled_from(["add", "server.add", Label("add")]),
    attempt=st.integers(1, 5),
    timeout=st.one_of(st.none(), st.floats(0.001, 60), st.sampled_from([5, float("inf")])),
    scopes=st.lists(st.sampled_from(["a:read", "b:*", "*"]), max_size=3),
)
def test_a_request_encodes_as_canonical_bytes(
    arguments: dict[str, Any], tool: str, attempt: int, timeout: float | None, scopes: list[str]
) -> None:
    request: dict[str, Any] = {
        "tool": tool,
        "arguments": arguments,
        "principal": Principal(id="alice", tenant="acme", scopes=scopes).record(),
        "attempt": attempt,
    }
    if timeout is not None:
        request["timeout_s"] = timeout
    outcome_of(request_bytes, request)


@st.composite
def outcomes(draw: st.DrawFn) -> ToolOutcome:
    ok = draw(st.booleans())
    content = draw(st.lists(st.dictionaries(st.text(max_size=4), VALUES | PLAIN), max_size=3))
    result = ToolResult(
        content=content, structured=draw(VALUES | PLAIN), is_error=draw(st.booleans())
    )
    error = (
        None
        if ok
        else ToolError.of(
            draw(st.sampled_from(["timeout", "internal", "unavailable"])),
            "add",
            draw(st.text(max_size=8)),
        )
    )
    return ToolOutcome(
        tool=draw(st.sampled_from(["add", "srv.add"])),
        ok=ok,
        result=draw(st.sampled_from([result, None])) if not ok else result,
        error=error,
        invoked=draw(st.booleans()),
        version=draw(st.sampled_from([None, "", "1.2.0"])),
        timeout_s=draw(st.one_of(st.none(), st.floats(0, 60), st.just(30))),
        allocation=draw(st.sampled_from([None, {"allocated_s": 0.5, "fits": True}])),
        next_attempt_in_s=None if ok else draw(st.sampled_from([None, 0.05])),
    )


@settings(max_examples=300, deadline=None)
@given(outcome=outcomes())
def test_an_outcome_encodes_as_canonical_bytes(outcome: ToolOutcome) -> None:
    outcome_of(outcome_bytes, outcome)


@settings(max_examples=200, deadline=None)
@given(value=PLAIN)
def test_plain_json_takes_the_fast_path_and_is_its_own_encoding(value: Any) -> None:
    assert is_plain(value)
    outcome = ToolOutcome(
        tool="add", ok=True, result=ToolResult(content=[{"v": value}], structured=value)
    )
    assert outcome_bytes(outcome) == canonical_bytes(outcome)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), 2**64, -(2**63) - 1, (1, 2), {1: "a"}, b"x", {"a"}, Colour.RED],
)
def test_what_json_cannot_carry_as_it_is_is_not_plain(value: Any) -> None:
    assert not is_plain(value)
    assert not is_plain([value])
    assert not is_plain({"k": value})


def test_every_field_of_the_outcome_is_in_its_bytes() -> None:
    """A field added to ToolOutcome or ToolResult must be added to the fast encoding too:
    the bytes of a full outcome hold exactly the models' fields."""
    outcome = ToolOutcome(
        tool="add", ok=True, result=ToolResult(content=[{"type": "text", "text": "2"}])
    )
    data = canonical_bytes(outcome)
    assert outcome_bytes(outcome) == data
    parsed = orjson.loads(data)
    assert set(parsed) == set(ToolOutcome.model_fields)
    assert set(parsed["result"]) == set(ToolResult.model_fields)
