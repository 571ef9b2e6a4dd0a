"""What an ``orch ui`` server is started with, and the rule of who may reach it.

A server bound to a loopback address serves the user's own machine; bound to any other
address it serves whoever reaches it, so it needs a token (:func:`require_token`). This
module decides; it never reads a store and never opens a socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from traces import ArtifactStore, Verifier

__all__ = ["LOOPBACK_NAMES", "UiSettings", "is_loopback", "require_token"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names a loopback-bound server answers to (the ``Host`` header it accepts)."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, 127/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def require_token(host: str, token: str | None) -> None:
    """Refuse to serve off loopback without a token: a ValueError naming the fix."""
    if token is None and not is_loopback(host):
        raise ValueError(
            f"orch ui bound to {host} would serve anyone who reaches it; fix: give --token T "
            "(or let orch ui make one), or bind 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise ValueError("the token is shorter than 16 characters; fix: give a longer --token")


@dataclass(frozen=True)
class UiSettings:
    """One server's configuration."""

    store: ArtifactStore
    """The store shown (opened by the caller, never created here)."""
    token: str | None = None
    """Required on every request when set (header, ``?token=``, then a cookie)."""
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_NAMES
    """``Host`` header names accepted (None: any, for a server behind a token). A loopback
    server refuses other names: a web page must not reach it through DNS rebinding."""
    allow_replay: bool = False
    """Whether pages that write (replay) are offered; everything else only reads."""
    trusted: tuple[Verifier, ...] = ()
    """Keys whose checkpoint signatures count when the whole store is verified."""
    live_poll_ms: int = 1500
    """How often a running run's page asks whether it changed (and a replay's page how far
    the replay got)."""
    store_location: str | None = None
    """Where :attr:`store` was opened from, for the replay process to open it too (None: no
    replay from the page, only from a shell)."""
    evals_dir: Path | None = None
    """The folder of evaluation files (``orch eval --save``) the Evaluations page lists; no
    file outside it is ever read (None: the page says how to give one)."""
    replay_timeout: float = 600.0
    """Seconds a replay process may run: one still running then is stopped (its whole
    process group) and its replay ends as failed, saying so."""
