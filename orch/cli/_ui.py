"""``orch ui``: serve a local web app over a store (the ``ui`` extra).

Opens the store without creating it (a missing store is one line), refuses to bind an
address other than loopback without a token (it makes one with :mod:`secrets` when none is
given, and prints it once, in the address), and prints the address to open. The app itself
is :mod:`orch.ui`, imported only when this command runs, so the CLI works without the extra.
"""

from __future__ import annotations

import math
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from orch.cli.common import CliError, StoreOpt, open_cli_store, trusted_keys, user_errors
from traces import default_store_location

__all__ = ["ui_command"]


def _token(host: str, given: str | None, loopback: bool) -> str | None:
    if given is not None:
        if len(given) < 16:
            raise CliError("--token is shorter than 16 characters", "give a longer --token")
        return given
    return None if loopback else secrets.token_urlsafe(24)


def _seconds(given: str) -> float:
    """``--replay-timeout``: a positive, finite number of seconds."""
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise CliError(
            f"--replay-timeout {given[:40]!r} is not a positive number of seconds",
            "give seconds, e.g. --replay-timeout 1800 (the default is 600)",
        )
    return seconds


@user_errors
def ui_command(
    store: StoreOpt = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind. Anything but loopback (127.0.0.1, ::1, localhost) needs a "
            "token: orch ui makes one unless --token gives it.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (1-65535).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Require this token on every request (at least 16 characters); off loopback "
            "one is always required.",
        ),
    ] = None,
    allow_replay: Annotated[
        bool,
        typer.Option(
            "--allow-replay",
            help="Offer replay from a run's page (it imports the run's pipeline file and runs "
            "it offline; not recorded unless asked); read-only without.",
        ),
    ] = False,
    replay_timeout: Annotated[
        str,
        typer.Option(
            "--replay-timeout",
            metavar="SECONDS",
            help="Stop a replay started from a page that runs longer than this (its process "
            "and what it started); it ends as failed, saying so.",
        ),
    ] = "600",
    evals: Annotated[
        Path | None,
        typer.Option(
            "--evals",
            help="A folder of evaluation files (orch eval --save) for the Evaluations page; "
            "no file outside it is read.",
        ),
    ] = None,
) -> None:
    """Browse, compare and verify a store's runs in a local web app (needs orch's ui extra)."""
    try:
        from orch.ui import LOOPBACK_NAMES, UiSettings, is_loopback, serve
    except ImportError as exc:
        raise CliError(
            f"orch ui needs the ui extra ({exc.name or exc} is not installed)",
            "pip install 'orch[ui]'",
        ) from None
    if not 1 <= port <= 65535:
        raise CliError(f"--port {port} is out of range", "give a port from 1 to 65535")
    loopback = is_loopback(host)
    token = _token(host, token, loopback)
    timeout = _seconds(replay_timeout)
    if evals is not None and not evals.is_dir():
        raise CliError(
            f"--evals {evals} is not a folder",
            "give the folder your evaluation files (orch eval --save FILE) are in",
        )
    keys = tuple(trusted_keys(None))
    with open_cli_store(store) as st:  # reading: a typo makes no store
        settings = UiSettings(
            store=st,
            token=token,
            # Off loopback the token guards it; on loopback, only its own names may reach it.
            allowed_hosts=(*LOOPBACK_NAMES, host.lower()) if loopback else None,
            allow_replay=allow_replay,
            trusted=keys,
            # The replay process opens the store again, from where this one was opened.
            store_location=store or default_store_location(),
            evals_dir=None if evals is None else evals.resolve(),
            replay_timeout=timeout,
        )

        def announce(url: str) -> None:
            sys.stdout.write(f"orch ui: {url}\n")
            sys.stdout.flush()

        try:
            serve(settings, host, port, announce=announce)
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                "pick another --port, or stop what is using it",
            ) from None
        except ValueError as exc:
            raise CliError(str(exc)) from None
