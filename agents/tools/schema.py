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


class SchemaValidator:
    """A compiled validator for one tool's input schema."""

    __slots__ = ("_validator", "error")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.error: str | None = None
        schema = dict(schema)
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
        if self._validator.is_valid(arguments):  # the common case, without building errors
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
