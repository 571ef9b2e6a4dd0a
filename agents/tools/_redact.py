"""Keeping secrets out of records: which arguments are secret, and scrubbing their values.

An argument is secret when the tool's policy names it, when its schema marks it
(``"format": "password"`` or ``"writeOnly": true``, which is how pydantic describes
``SecretStr``, also inside optional, list and nested-model types), or when its name says so
word by word (password, secret, credential, authorization, cookie, pin, api key, private key,
a credential token; not ``max_tokens`` or ``page_token``), at any depth. A secret's value is
replaced by ``[redacted]`` in the recorded request and the audit entry; the live call gets
the real value. A tool may echo a secret back (an ``env`` tool, an error message quoting its
input), so the values of secret arguments and of injected credentials are also scrubbed out
of the recorded result. This module must never log, store or return a secret's value
outside the call itself.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_name", "redact_arguments", "schema_secrets", "scrub"]

REDACTED = "[redacted]"
# Names are split into words (snake, kebab, dotted and camel case) and read word by word, so
# that "max_tokens" or "page_token" are not secrets while "access_token" and "apiKey" are.
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "authorization",
        "authorisation",
        "cookie",
        "cookies",
        "apikey",
        "privatekey",
        "pin",
    }
)
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("client", "secret")}
)
# "token" alone, or after a word that makes it a credential (not a pagination cursor).
_NOT_CREDENTIAL_TOKEN = frozenset(
    {
        "page",
        "next",
        "prev",
        "previous",
        "continuation",
        "pagination",
        "cursor",
        "sync",
        "max",
        "num",
        "total",
        "input",
        "output",
        "stop",
        "end",
        "start",
        "special",
        "eos",
        "bos",
    }
)
# Values with nothing inside to redact (a dict or a list may hold a secret-named key).
_SCALARS = frozenset({str, int, float, bool, type(None)})
# Values this short are not scrubbed from free text: replacing every "abc" would mangle
# results without protecting anything worth protecting.
_MIN_SCRUB = 6


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when an argument's name says it holds a secret."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    for i, w in enumerate(words):
        if w == "token" and (i == 0 or words[i - 1] not in _NOT_CREDENTIAL_TOKEN):
            return True
    return False


def schema_secrets(schema: Mapping[str, Any]) -> frozenset[str]:
    """Top-level argument names that the JSON schema marks as secret (``format: password``
    or ``writeOnly``), also inside ``anyOf``/``oneOf``/``allOf``, ``items`` and ``$ref``s to
    ``$defs`` (an optional secret, a list of them, a nested model holding one)."""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return frozenset()
    defs = schema.get("$defs") or schema.get("definitions") or {}
    return frozenset(str(name) for name, sub in props.items() if _marks_secret(sub, defs, set()))


def _marks_secret(node: Any, defs: Any, seen: set[str]) -> bool:
    if not isinstance(node, Mapping):
        return False
    if node.get("format") == "password" or node.get("writeOnly") is True:
        return True
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen and isinstance(defs, Mapping):
        seen.add(ref)
        target = defs.get(ref.rsplit("/", 1)[-1])
        if _marks_secret(target, defs, seen):
            return True
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        branches = node.get(key)
        if isinstance(branches, list) and any(_marks_secret(b, defs, seen) for b in branches):
            return True
    for key in ("items", "additionalProperties"):
        if _marks_secret(node.get(key), defs, seen):
            return True
    inner = node.get("properties")
    return isinstance(inner, Mapping) and any(_marks_secret(v, defs, seen) for v in inner.values())


def redact_arguments(
    arguments: Mapping[str, Any], names: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """(arguments with secret values replaced, the secret string values found)."""
    explicit = names if isinstance(names, frozenset) else frozenset(names)
    for k, v in arguments.items():
        # The common case, decided without the walk: flat arguments, none of them secret.
        if type(k) is not str or type(v) not in _SCALARS or k in explicit or is_secret_name(k):
            break
    else:
        return dict(arguments), []
    found: list[str] = []

    def walk(value: Any, key: str | None, top: bool) -> Any:
        if key is not None and ((top and key in explicit) or is_secret_name(key)):
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
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]  # a secret given as a number can be quoted as one
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def scrub(value: Any, secrets: Iterable[str], always: Iterable[str] = ()) -> Any:
    """``value`` with every occurrence of each secret string replaced by ``[redacted]``;
    ``secrets`` shorter than six characters are left (they would match ordinary text), and
    ``always`` (credentials) are replaced whatever their length."""
    needles = sorted(
        {s for s in secrets if len(s) >= _MIN_SCRUB} | {s for s in always if s},
        key=len,
        reverse=True,
    )
    if not needles:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for n in needles:
                if n in v:
                    v = v.replace(n, REDACTED)
            return v
        if isinstance(v, Mapping):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
