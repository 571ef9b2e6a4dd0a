"""Canonical bytes and content hashes for everything the record holds.

One value has exactly one encoding: orjson with sorted keys, no whitespace, pydantic models
dumped in JSON mode. Anything without an unambiguous canonical form is refused with a
:class:`~traces.errors.CanonicalEncodingError` naming where it sits. This module must never
fall back to ``repr``, ``str`` or pickle: a silent fallback would make two different values
hash alike, or one value hash two ways.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson
from pydantic import BaseModel

from .errors import CanonicalEncodingError, InvalidKeyError

__all__ = [
    "HASH_PREFIX",
    "canonical_bytes",
    "canonical_json",
    "digest",
    "hash_value",
    "is_key",
    "check_key",
    "to_canonical",
]

HASH_PREFIX: Final = "sha256:"
_KEY_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_OPTS: Final = orjson.OPT_SORT_KEYS
# int outside this range cannot round-trip through every JSON reader (orjson refuses it too)
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def digest(data: bytes) -> str:
    """Return the content key ``sha256:<hex>`` of raw bytes."""
    return HASH_PREFIX + hashlib.sha256(data).hexdigest()


def is_key(key: object) -> bool:
    """True when ``key`` is a well-formed content key."""
    return isinstance(key, str) and _KEY_RE.match(key) is not None


def check_key(key: object) -> str:
    """Return ``key`` unchanged, or raise :class:`InvalidKeyError`."""
    if not is_key(key):
        raise InvalidKeyError(key)
    return key  # type: ignore[return-value]


def to_canonical(value: Any, path: str = "$") -> Any:
    """Return ``value`` as plain JSON data (dict, list, str, int, finite float, bool, None).

    Pydantic models become their JSON-mode dump; tuples become lists. Everything else that
    JSON cannot carry without a choice being made for the user is refused.
    """
    # Exact-type dispatch first: this runs for every value recorded, so the common cases
    # must not pay for isinstance chains.
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise CanonicalEncodingError(
                path, f"integer {value} is outside the 64-bit range", "encode it as a string"
            )
        return value
    if t is float:
        if not math.isfinite(value):
            raise CanonicalEncodingError(
                path,
                f"float {value!r} is not finite",
                "replace NaN/Infinity with None or a sentinel string before recording",
            )
        return value
    if t is dict:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise CanonicalEncodingError(
                    path,
                    f"mapping key {k!r} is a {type(k).__name__}, not a str",
                    "use string keys",
                )
            out[k] = to_canonical(v, f"{path}.{k}")
        return out
    if t is list or t is tuple:
        return [to_canonical(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, BaseModel):
        try:
            dumped = value.model_dump(mode="json")
        except Exception as exc:  # pydantic raises several types; all mean "no JSON form"
            raise CanonicalEncodingError(
                path,
                f"{type(value).__name__} cannot be dumped in JSON mode ({exc})",
                "give the model's fields JSON-serialisable types",
            ) from exc
        return to_canonical(dumped, path)
    if isinstance(value, (set, frozenset)):
        raise CanonicalEncodingError(
            path,
            f"a {t.__name__} has no order",
            "convert it to a sorted list before recording",
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise CanonicalEncodingError(
            path,
            "raw bytes have no canonical text form",
            "encode them explicitly (base64 or hex string), or store them as an artifact",
        )
    if isinstance(value, bool):  # bool subclasses are exotic but keep them exact
        return bool(value)
    if isinstance(value, int):
        return to_canonical(int(value), path)
    if isinstance(value, float):
        return to_canonical(float(value), path)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return to_canonical(dict(value), path)
    raise CanonicalEncodingError(
        path,
        f"object of type {t.__module__}.{t.__qualname__} has no canonical form",
        "record a pydantic model or plain JSON data (dict, list, str, int, float, bool, None)",
    )


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` to its one canonical byte string."""
    return orjson.dumps(to_canonical(value), option=_OPTS)


def canonical_json(value: Any) -> str:
    """Canonical encoding as text (for display and diffs)."""
    return canonical_bytes(value).decode()


def hash_value(value: Any) -> str:
    """Content key of ``value``'s canonical bytes."""
    return digest(canonical_bytes(value))
