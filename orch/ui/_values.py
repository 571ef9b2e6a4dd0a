"""Recorded values as page text: JSON for structures, cut to a size a page can hold.

Every value here is untrusted text; this module only shapes it (the templates escape it).
A value too long to show inline is shown by its start, with the rest behind a ``<details>``
(which opens without script) up to :data:`FULL_LIMIT` characters, so that one huge model
answer cannot swell a page to megabytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from orch.render import json_text

__all__ = ["FULL_LIMIT", "INLINE_LIMIT", "Shown", "shown", "tokens_text", "wall"]

INLINE_LIMIT = 160
"""Characters shown inline before a value folds."""
FULL_LIMIT = 20_000
"""Characters a folded value shows when opened; the rest is counted, not sent."""


@dataclass(frozen=True)
class Shown:
    """A value ready for a template."""

    text: str
    """The whole text, up to :data:`FULL_LIMIT` characters."""
    short: str | None
    """Its start when it folds (None: short enough to show as it is)."""
    length: int
    """How many characters the whole text has."""
    cut: int
    """Characters left out of :attr:`text`."""


def shown(value: Any, limit: int = INLINE_LIMIT, full_limit: int = FULL_LIMIT) -> Shown:
    """``value`` (a string as it is, anything else as JSON) shaped for a page."""
    inline = json_text(value)
    if len(inline) <= limit:
        return Shown(inline, None, len(inline), 0)
    whole = json_text(value, indent=True)
    return Shown(
        whole[:full_limit], inline[: limit - 1], len(whole), max(len(whole) - full_limit, 0)
    )


def wall(ts: float | None) -> str:
    """Seconds since the epoch as UTC text (``-`` for none)."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def tokens_text(usage: dict[str, int]) -> str:
    """``12 input, 30 output`` from a usage mapping (``-`` when empty)."""
    return ", ".join(f"{v} {k.removesuffix('_tokens')}" for k, v in sorted(usage.items())) or "-"
