"""Argument validation against a tool's JSON schema, with hints per argument.

MCP servers describe their tools' arguments in JSON Schema; the broker checks arguments
against it before the call, so a malformed call never reaches the server, and turns each
violation into a hint keyed by the argument it is about (``"b": "required property is
missing"``) for the caller, or the model, to fix. Validators are compiled once per schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError

__all__ = ["SchemaValidator"]

_DEFAULT = jsonschema.Draft202012Validator


_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "format", "$comment"})
_FLAT_TOP = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "$schema"}
_FLAT_PROPERTY = _ANNOTATIONS | {"type", "enum"}
_JSON_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _flat_check(schema: Mapping[str, Any]) -> Any:
    """A quick validity test for the common schema (an object of typed properties, with
    ``required``, ``enum`` and ``additionalProperties``), or None when the schema uses
    anything else. It only ever says "valid" when jsonschema would; it is a fast path, and
    hints always come from jsonschema itself."""
    if set(schema) - _FLAT_TOP or schema.get("type", "object") != "object":
        return None
    props = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if (
        not isinstance(props, Mapping)
        or not isinstance(required, list)
        or extra not in (True, False)
    ):
        return None
    checks: dict[str, tuple[Any, list[Any] | None]] = {}
    for name, sub in props.items():
        if not isinstance(sub, Mapping) or set(sub) - _FLAT_PROPERTY:
            return None
        kinds = sub.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if kinds is None:
            tests: list[Any] = []
        elif isinstance(kinds, list) and all(k in _JSON_TYPES for k in kinds):
            tests = [_JSON_TYPES[k] for k in kinds]
        else:
            return None
        enum = sub.get("enum")
        if enum is not None and not isinstance(enum, list):
            return None
        checks[str(name)] = (_any_of(tests), enum)
    required_names = [str(r) for r in required]

    def check(args: Mapping[str, Any]) -> bool:
        for r in required_names:
            if r not in args:
                return False
        for key, value in args.items():
            found = checks.get(key)
            if found is None:
                if extra is False:
                    return False
                continue
            test, enum = found
            if test is not None and not test(value):
                return False
            # enum by equality with JSON types only: 1 == True in Python, not in JSON
            if enum is not None and not any(type(value) is type(e) and value == e for e in enum):
                return False
        return True

    return check


def _any_of(tests: list[Any]) -> Any:
    """One test for a property's types: None for no type, the type's own test for one (the
    common case: no generator per argument of every call), else any of them."""
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(t(v) for t in tests)


class SchemaValidator:
    """A compiled validator for one tool's input schema."""

    __slots__ = ("_fast", "_validator", "error")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.error: str | None = None
        schema = dict(schema)
        self._fast = _flat_check(schema)
        cls = jsonschema.validators.validator_for(schema, default=_DEFAULT)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            # A server that publishes a broken schema: say so at call time, never crash.
            self.error = f"the tool's input schema is invalid ({exc.message})"
        self._validator = cls(schema)

    def hints(self, arguments: Mapping[str, Any]) -> dict[str, str]:
        """{} when ``arguments`` are valid, else a hint per argument name."""
        if self.error is not None:
            return {"(schema)": self.error}
        if self._fast is not None and self._fast(arguments):
            return {}  # the common case, decided without jsonschema's machinery
        if self._validator.is_valid(arguments):
            return {}
        out: dict[str, str] = {}
        errors = sorted(self._validator.iter_errors(dict(arguments)), key=_order)
        for err in errors:
            for name, hint in _describe(err):
                out.setdefault(name, hint)
        return out


def _order(err: jsonschema.ValidationError) -> tuple[str, str]:
    return ("/".join(str(p) for p in err.absolute_path), err.message)


def _describe(err: jsonschema.ValidationError) -> list[tuple[str, str]]:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, Mapping):
        required = err.validator_value if isinstance(err.validator_value, list) else []
        missing = [r for r in required if r not in err.instance]
        prefix = f"{path}." if path else ""
        return [(f"{prefix}{m}", "required argument is missing") for m in missing]
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        props = err.schema.get("properties") if isinstance(err.schema, Mapping) else None
        allowed = set(props.keys()) if isinstance(props, Mapping) else set()
        extra = sorted(k for k in err.instance if k not in allowed)
        prefix = f"{path}." if path else ""
        known = ", ".join(sorted(allowed)) or "none"
        return [(f"{prefix}{k}", f"unknown argument (known: {known})") for k in extra]
    if err.validator == "type":
        expected = err.validator_value
        got = orjson.dumps(err.instance).decode()
        got = got if len(got) <= 40 else got[:37] + "..."
        return [(path or "(arguments)", f"expected {expected}, got {got}")]
    return [(path or "(arguments)", err.message)]
