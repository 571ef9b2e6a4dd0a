"""Versioned router state: learned tables kept as content-addressed artifacts.

A router's learned state (EMA statistics, pheromone tables, a kNN index) is an immutable
pydantic value with a ``format`` tag and the key of the version it was derived from
(``parent``). Its version is its hash, so saving it in a run's store makes it an artifact that
any run, replay or audit can read back byte for byte. A serving run names the version it read
(in its input, and in each Decision's ``state_version``); applying a batch of feedback is
itself a recorded step whose output is the next version, so the history of a router's state
is a chain of artifacts that :func:`state_history` walks and ``orch show`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from traces import ArtifactStore, hash_value

__all__ = [
    "StateVersion",
    "load_state",
    "register_state_format",
    "save_state",
    "state_formats",
    "state_history",
]

StateT = TypeVar("StateT", bound=BaseModel)
_FORMATS: dict[str, tuple[type[BaseModel], Callable[[Any], str]]] = {}


def register_state_format(
    fmt: str, cls: type[BaseModel], summary: Callable[[Any], str] = lambda _s: ""
) -> None:
    """Make ``cls`` loadable by its ``format`` tag; ``summary`` gives a one-line description
    of a version for ``orch show``."""
    _FORMATS[fmt] = (cls, summary)


def state_formats() -> list[str]:
    return sorted(_FORMATS)


def save_state(store: ArtifactStore, state: BaseModel) -> str:
    """Store ``state`` as an artifact; return its version (the artifact's key)."""
    fmt = getattr(state, "format", None)
    if fmt not in _FORMATS:
        raise ValueError(
            f"{type(state).__name__} has format {fmt!r}, not a registered router state format "
            f"({', '.join(state_formats())}); fix: register_state_format() it first"
        )
    key = store.put_value(state)
    if key != hash_value(state):  # the version a decision names must be this artifact
        raise AssertionError(f"store returned {key} for a state hashing to {hash_value(state)}")
    return key


def load_state(store: ArtifactStore, version: str, cls: type[StateT] | None = None) -> Any:
    """Read a state version back; ``cls`` (optional) says which kind is expected."""
    if not store.has(version):
        raise LookupError(
            f"router state {version!r} is not in this store; fix: check the version, or "
            "the --store the run was written to"
        )
    value = store.get_value(version)
    fmt = value.get("format") if isinstance(value, dict) else None
    if fmt not in _FORMATS:
        raise ValueError(
            f"artifact {version} is not router state (format {fmt!r}; known: "
            f"{', '.join(state_formats())})"
        )
    kind = _FORMATS[fmt][0]
    if cls is not None and kind is not cls:
        raise ValueError(
            f"artifact {version} is a {kind.__name__}, not a {cls.__name__}; fix: pass the "
            f"version of a {cls.__name__}"
        )
    try:
        return kind.model_validate(value)
    except ValidationError as exc:
        raise ValueError(f"artifact {version} is not a valid {kind.__name__}: {exc}") from None


def is_state(store: ArtifactStore, key: str) -> bool:
    """True when ``key`` names a stored router state version."""
    if not store.has(key):
        return False
    try:
        value = store.get_value(key)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("format") in _FORMATS


@dataclass(frozen=True)
class StateVersion:
    """One link of a state's history: its version, the state (None if not stored) and a
    one-line summary."""

    version: str
    state: BaseModel | None
    summary: str


def state_history(store: ArtifactStore, version: str, limit: int = 1000) -> list[StateVersion]:
    """``version`` and its ancestors, newest first, up to the initial state or the first
    version this store does not hold (listed with ``state=None``)."""
    out: list[StateVersion] = []
    key: str | None = version
    while key is not None and len(out) < limit:
        if not store.has(key):
            out.append(StateVersion(key, None, "(not in this store)"))
            break
        state = load_state(store, key)
        out.append(StateVersion(key, state, _FORMATS[state.format][1](state)))
        key = getattr(state, "parent", None)
    return out
