"""Keeping secrets out of records: which arguments are secret, and scrubbing their values.

An argument is secret when the tool's policy names it, when its schema marks it
(``"format": "password"`` or ``"writeOnly": true``, which is how pydantic describes
``SecretStr``), or when its name looks like one (password, token, api key, secret,
authorization, credential, private key), at any depth. A secret's value is replaced by
``[redacted]`` in the recorded request and the audit entry; the live call gets the real value.
A tool may echo a secret back (an ``env`` tool, an error message quoting its input), so the
values of secret arguments and of injected credentials are also scrubbed out of the recorded
result. This module must never log, store or return a secret's value outside the call itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "redact_arguments", "schema_secrets", "scrub"]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passphrase|secret|token|api[_-]?key|authori[sz]ation|credential|"
    r"private[_-]?key|cookie)"
)
# Values this short are not scrubbed from free text: replacing every "abc" would mangle
# results without protecting anything worth protecting.
_MIN_SCRUB = 6


def schema_secrets(schema: Mapping[str, Any]) -> frozenset[str]:
    """Top-level argument names that the JSON schema marks as secret."""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return frozenset()
    out = set()
    for name, sub in props.items():
        if isinstance(sub, Mapping) and (
            sub.get("format") == "password" or sub.get("writeOnly") is True
        ):
            out.add(str(name))
    return frozenset(out)


def redact_arguments(
    arguments: Mapping[str, Any], names: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """(arguments with secret values replaced, the secret string values found)."""
    explicit = frozenset(names)
    found: list[str] = []

    def walk(value: Any, key: str | None, top: bool) -> Any:
        if key is not None and ((top and key in explicit) or _SECRET_NAME.search(key)):
            found.extend(_strings(value))
            return REDACTED
        if isinstance(value, Mapping):
            return {str(k): walk(v, str(k), False) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, None, False) for v in value]
        return value

    redacted = {str(k): walk(v, str(k), True) for k, v in arguments.items()}
    return redacted, found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every occurrence of each secret string replaced by ``[redacted]``."""
    needles = sorted({s for s in secrets if len(s) >= _MIN_SCRUB}, key=len, reverse=True)
    if not needles:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for n in needles:
                if n in v:
                    v = v.replace(n, REDACTED)
            return v
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
