"""Canonical bytes and content hashes for everything the record holds.

One value has exactly one encoding: orjson with sorted keys, no whitespace, pydantic models
dumped in JSON mode. Anything without an unambiguous canonical form is refused with a
:class:`~traces.errors.CanonicalEncodingError` naming where it sits. This module must never
fall back to ``repr``, ``str`` or pickle: a silent fallback would make two different values
hash alike, or one value hash two ways.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, get_args, get_origin

import orjson
from pydantic import BaseModel

from .errors import CanonicalEncodingError, InvalidKeyError

__all__ = [
    "HASH_PREFIX",
    "Encoded",
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
            # Leaves inline (most values are): a call per leaf was most of the cost.
            tv = type(v)
            if tv is str or tv is bool or v is None or (tv is int and _INT_MIN <= v <= _INT_MAX):
                out[k] = v
            else:
                out[k] = to_canonical(v, f"{path}.{k}")
        return out
    if t is list or t is tuple:
        items: list[Any] = []
        for i, v in enumerate(value):
            tv = type(v)
            if tv is str or tv is bool or v is None or (tv is int and _INT_MIN <= v <= _INT_MAX):
                items.append(v)
            else:
                items.append(to_canonical(v, f"{path}[{i}]"))
        return items
    if isinstance(value, BaseModel):
        return _dump_model(value, path)
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


# -- pydantic models ---------------------------------------------------------------------------
#
# A model is encoded as its JSON-mode dump, but that dump alone is not safe to hash: pydantic
# turns a set into a list in iteration order (which differs between processes for strings),
# bytes into text, and passes NaN through. So the Python-level field values are checked first.
# Checking every value of every model would cost more than the rest of a step; instead each
# model class gets a plan once: the fields whose declared type cannot hold anything unsafe are
# skipped, the rest are walked.

_SAFE_LEAVES: Final = frozenset({str, int, bool, type(None)})
_UNIONS: Final = (typing.Union, types.UnionType)
_plans: dict[type[BaseModel], tuple[str, ...]] = {}


def _safe_type(tp: Any, seen: set[type[BaseModel]]) -> bool:
    """True when every value of declared type ``tp`` has a deterministic JSON form."""
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    if tp in _SAFE_LEAVES:
        return True  # an int beyond 64 bits is refused by orjson itself, and reported
    origin = get_origin(tp)
    if origin is typing.Literal:
        return all(type(a) in (str, int, bool) for a in get_args(tp))
    if origin in _UNIONS:
        return all(_safe_type(a, seen) for a in get_args(tp))
    if origin in (list, tuple):
        return all(a is Ellipsis or _safe_type(a, seen) for a in get_args(tp))
    if origin is dict:
        key, val = get_args(tp) or (Any, Any)
        return key is str and _safe_type(val, seen)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return all(type(m.value) in (str, int) for m in tp)
        if issubclass(tp, BaseModel):
            if tp in seen:
                return True  # recursive model: the outer check covers it
            return not _plan(tp, seen)
    return False


def _plan(cls: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> tuple[str, ...]:
    """Names of the fields of ``cls`` whose values must be checked before dumping."""
    plan = _plans.get(cls)
    if plan is None:
        seen = (seen or set()) | {cls}
        plan = tuple(
            name for name, info in cls.model_fields.items() if not _safe_type(info.annotation, seen)
        )
        if cls.model_config.get("extra") == "allow":
            plan += ("__pydantic_extra__",)
        _plans[cls] = plan
    return plan


def _check_python(value: Any, path: str) -> None:
    """Refuse what a JSON-mode dump would encode ambiguously: sets, bytes, NaN, infinities."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(value):
            to_canonical(value, path)  # raises the standard error
        return
    if isinstance(value, BaseModel):
        for name in _plan(type(value)):
            sub = getattr(value, name, None)
            if name == "__pydantic_extra__":
                for k, v in (sub or {}).items():
                    _check_python(v, f"{path}.{k}")
            else:
                _check_python(sub, f"{path}.{name}")
        return
    if isinstance(value, (set, frozenset, bytes, bytearray, memoryview)):
        to_canonical(value, path)  # raises the standard error
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_python(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_python(v, f"{path}[{i}]")
    elif isinstance(value, float):
        _check_python(float(value), path)


_plain_dump: dict[type[BaseModel], bool] = {}
"""Model class -> whether it dumps with BaseModel's own ``model_dump`` (not an override)."""


def _dump_model(value: BaseModel, path: str) -> Any:
    cls = type(value)
    plan = _plans.get(cls)
    if plan is None or plan:  # most models have an empty plan: nothing to walk
        _check_python(value, path)
    try:
        plain = _plain_dump.get(cls)
        if plain is None:
            plain = _plain_dump[cls] = cls.model_dump is BaseModel.model_dump
        if plain:
            # What BaseModel.model_dump(mode="json") calls, with the same arguments (the
            # others are its defaults), without its Python wrapper: half the cost.
            return cls.__pydantic_serializer__.to_python(value, mode="json", warnings=True)
        return value.model_dump(mode="json")
    except Exception as exc:  # pydantic raises several types; all mean "no JSON form"
        raise CanonicalEncodingError(
            path,
            f"{type(value).__name__} cannot be dumped in JSON mode ({exc})",
            "give the model's fields JSON-serialisable types",
        ) from exc


class Encoded:
    """A value already in canonical form: ``canonical_bytes(Encoded(canonical_bytes(v)))``
    is ``canonical_bytes(v)``. For a caller that needs a value's bytes (its digest, say)
    before handing the value on, so that it is encoded once. Make it only from
    :func:`canonical_bytes`: the bytes are not checked again."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` to its one canonical byte string."""
    if type(value) is Encoded:
        return value.data
    # A model's checked JSON-mode dump is plain data; orjson encodes it directly. Anything
    # else takes the full walk.
    data = _dump_model(value, "$") if isinstance(value, BaseModel) else to_canonical(value)
    try:
        return orjson.dumps(data, option=_OPTS)
    except orjson.JSONEncodeError as exc:
        raise CanonicalEncodingError(
            "$", str(exc), "encode integers beyond 64 bits as strings"
        ) from exc


def canonical_json(value: Any) -> str:
    """Canonical encoding as text (for display and diffs)."""
    return canonical_bytes(value).decode()


def hash_value(value: Any) -> str:
    """Content key of ``value``'s canonical bytes."""
    return digest(canonical_bytes(value))
