"""Canonical encoding: one value, one byte string; anything ambiguous is refused by path."""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from traces import CanonicalEncodingError, InvalidKeyError, canonical_bytes, digest, hash_value
from traces._canonical import check_key, is_key, to_canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _reordered(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _reordered(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_reordered(v, rng) for v in value]
    return value


@given(json_values, st.integers())
def test_encoding_ignores_dict_order_and_round_trips(value: Any, shuffle: int) -> None:
    encoded = canonical_bytes(value)
    assert canonical_bytes(_reordered(value, random.Random(shuffle))) == encoded
    assert canonical_bytes(orjson.loads(encoded)) == encoded
    assert encoded == orjson.dumps(orjson.loads(encoded), option=orjson.OPT_SORT_KEYS)


def test_sorted_compact_form() -> None:
    assert canonical_bytes({"b": 1, "a": [1.5, None, True], "c": "é"}) == (
        '{"a":[1.5,null,true],"b":1,"c":"é"}'.encode()
    )


class Kind(enum.Enum):
    A = "a"


class Inner(BaseModel):
    when: dt.date
    kind: Kind


class Outer(BaseModel):
    z: int
    a: list[Inner]
    extra: Any = None
    ratio: float = 0.5


def test_models_encode_in_json_mode_like_their_dict() -> None:
    m = Outer(z=1, a=[Inner(when=dt.date(2026, 11, 22), kind=Kind.A)])
    assert canonical_bytes(m) == canonical_bytes(m.model_dump(mode="json"))
    assert canonical_bytes(m) == (
        b'{"a":[{"kind":"a","when":"2026-11-22"}],"extra":null,"ratio":0.5,"z":1}'
    )


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        (math.nan, "$", "not finite"),
        ({"a": [1, math.inf]}, "$.a[1]", "not finite"),
        ({"s": {1, 2}}, "$.s", "has no order"),
        ([frozenset()], "$[0]", "has no order"),
        ({"b": b"raw"}, "$.b", "raw bytes"),
        ({"o": object()}, "$.o", "has no canonical form"),
        ({1: "x"}, "$", "not a str"),
        ({"big": 2**64}, "$.big", "outside the 64-bit range"),
        ({"neg": -(2**63) - 1}, "$.neg", "outside the 64-bit range"),
    ],
)
def test_ambiguous_values_are_refused_with_path_and_fix(
    value: Any, path: str, problem: str
) -> None:
    with pytest.raises(CanonicalEncodingError) as info:
        canonical_bytes(value)
    assert info.value.path == path
    assert problem in str(info.value)
    assert "; fix: " in str(info.value)


@pytest.mark.parametrize(
    ("extra", "path", "problem"),
    [
        ({"x", "y"}, "$.extra", "has no order"),
        (b"\x00\x01", "$.extra", "raw bytes"),
        ([1.0, math.nan], "$.extra[1]", "not finite"),
        ({"k": {1}}, "$.extra.k", "has no order"),
    ],
)
def test_models_holding_ambiguous_values_are_refused(extra: Any, path: str, problem: str) -> None:
    with pytest.raises(CanonicalEncodingError) as info:
        canonical_bytes(Outer(z=1, a=[], extra=extra))
    assert info.value.path == path
    assert problem in str(info.value)


def test_nan_in_a_float_field_is_refused() -> None:
    with pytest.raises(CanonicalEncodingError, match=r"at \$\.ratio: float nan is not finite"):
        canonical_bytes(Outer(z=1, a=[], ratio=math.nan))
    with pytest.raises(CanonicalEncodingError, match=r"\$\[0\]\.ratio"):
        to_canonical([Outer(z=1, a=[], ratio=math.inf)])


def test_keys() -> None:
    key = digest(b"abc")
    assert key == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert is_key(key) and check_key(key) == key
    assert hash_value({"a": 1}) == digest(b'{"a":1}')
    for bad in ["sha256:" + "A" * 64, "sha256:abc", "md5:" + "0" * 32, 5, None]:
        assert not is_key(bad)
        with pytest.raises(InvalidKeyError, match="invalid artifact key"):
            check_key(bad)
