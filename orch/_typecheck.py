"""Build-time type compatibility between what a producer gives and what a consumer expects.

The check is deliberately conservative in one direction only: it accepts what pydantic would
accept without loss (a subclass where its base is expected, ``int`` where ``float`` is, a member
where a union is) and refuses the rest, so that a mismatch is reported when the pipeline is
built rather than as a validation error deep inside a run.
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections import abc
from typing import Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from traces import hash_value

__all__ = ["compatible", "describe", "element_type", "field_type", "is_optional", "spec_type"]

_UNIONS = (typing.Union, types.UnionType)
# get_origin(Sequence[int]) is collections.abc.Sequence, whichever module it was written from.
_SEQUENCES = (list, tuple, abc.Sequence, typing.Sequence, set, frozenset)
_LIST_LIKE = (abc.Sequence, typing.Sequence, list, tuple)


def describe(tp: Any, *, qualified: bool = True) -> str:
    """A readable name for a type; ``qualified`` prefixes classes with their module."""
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        mod = tp.__module__
        if mod == "builtins" or not qualified:
            return tp.__qualname__
        return f"{mod}.{tp.__qualname__}"
    origin = get_origin(tp)
    if origin in _UNIONS:
        return " | ".join(describe(a, qualified=qualified) for a in get_args(tp))
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in get_args(tp))}]"
    if origin is not None:
        base = getattr(origin, "__qualname__", str(origin))
        return f"{base}[{', '.join(describe(a, qualified=qualified) for a in get_args(tp))}]"
    return str(tp)


_spec_cache: dict[Any, Any] = {}


def spec_type(tp: Any) -> Any:
    """How a type enters the pipeline spec: its name and a hash of its JSON schema.

    Not its module: a pipeline file loaded from another directory (or another checkout) gets
    another module name, and must still have the same spec hash. The schema hash makes a
    change to a model's fields, types or defaults change the spec.
    """
    try:
        return _spec_cache[tp]
    except (KeyError, TypeError):
        pass
    name = describe(tp, qualified=False)
    try:
        schema = TypeAdapter(tp).json_schema()
        result: Any = {"name": name, "schema": hash_value(schema)}
    except Exception:  # a type without a JSON schema: its name is all there is
        result = name
    with contextlib.suppress(TypeError):  # an unhashable type expression is not cached
        _spec_cache[tp] = result
    return result


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    return tp


def is_optional(tp: Any) -> bool:
    """True when ``None`` is an accepted value of ``tp``."""
    tp = _strip_annotated(tp)
    if tp is Any or tp is type(None) or tp is None:
        return True
    return get_origin(tp) in _UNIONS and any(a is type(None) for a in get_args(tp))


def element_type(tp: Any) -> Any | None:
    """The element type of a list-like annotation, or None when ``tp`` is not list-like."""
    tp = _strip_annotated(tp)
    if tp is Any:
        return Any
    origin = get_origin(tp)
    if origin in _UNIONS:  # e.g. list[X] | None
        for member in get_args(tp):
            found = element_type(member) if member is not type(None) else None
            if found is not None:
                return found
        return None
    if origin in _SEQUENCES or tp in _SEQUENCES:
        args = get_args(tp)
        if not args:
            return Any
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return None  # fixed-length tuples are records, not lists
        return args[0]
    return None


def compatible(produced: Any, expected: Any) -> bool:
    """True when a value of type ``produced`` is always a valid ``expected``."""
    produced, expected = _strip_annotated(produced), _strip_annotated(expected)
    if expected is Any or expected is object or produced == expected:
        return True
    if produced is Any:
        return True  # nothing can be proven; pydantic validates at run time
    p_origin, e_origin = get_origin(produced), get_origin(expected)
    if p_origin in _UNIONS:
        return all(compatible(member, expected) for member in get_args(produced))
    if e_origin in _UNIONS:
        return any(compatible(produced, member) for member in get_args(expected))
    if e_origin is typing.Literal:
        return p_origin is typing.Literal and set(get_args(produced)) <= set(get_args(expected))
    if p_origin is typing.Literal:
        return all(compatible(type(v), expected) for v in get_args(produced))
    if isinstance(produced, type) and isinstance(expected, type):
        if expected is float and produced is int:
            return True
        if produced is bool and expected is int:
            return False  # a bool where a count is expected is almost always a wiring mistake
        return issubclass(produced, expected)
    if p_origin is not None and e_origin is not None:
        same_family = p_origin == e_origin or (p_origin in _SEQUENCES and e_origin in _LIST_LIKE)
        if not same_family:
            return False
        p_args, e_args = get_args(produced), get_args(expected)
        if not e_args:
            return True
        if e_origin is tuple and e_args[-1] is not Ellipsis:
            # A fixed-length tuple is a record: only a tuple of the same shape always fits.
            return (
                p_origin is tuple
                and len(p_args) == len(e_args)
                and Ellipsis not in p_args
                and all(compatible(a, b) for a, b in zip(p_args, e_args, strict=True))
            )
        if p_origin is tuple and p_args and p_args[-1] is not Ellipsis:
            e_elem = element_type(expected)
            return e_elem is not None and all(compatible(a, e_elem) for a in p_args)
        if len(p_args) != len(e_args) or Ellipsis in p_args or Ellipsis in e_args:
            p_elem, e_elem = element_type(produced), element_type(expected)
            return p_elem is not None and e_elem is not None and compatible(p_elem, e_elem)
        return all(compatible(a, b) for a, b in zip(p_args, e_args, strict=True))
    if isinstance(expected, type) and e_origin is None and p_origin is not None:
        return isinstance(p_origin, type) and issubclass(p_origin, expected)
    return False


def field_type(model: type[BaseModel], path: tuple[str, ...]) -> tuple[Any, str | None]:
    """Resolve a dotted field path in ``model``: (annotation, None) or (None, problem)."""
    current: Any = model
    for i, name in enumerate(path):
        current = _strip_annotated(current)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            walked = ".".join(path[:i])
            return None, f"field {walked!r} is a {describe(current)}, not a model with fields"
        fields = current.model_fields
        if name not in fields:
            known = ", ".join(sorted(fields)) or "(none)"
            return None, f"{current.__name__} has no field {name!r} (fields: {known})"
        current = fields[name].annotation
    return current, None
