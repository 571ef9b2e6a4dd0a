"""What every ``orch`` command shares: the two consoles, one-line user errors, JSON output,
opening a store, the common options, and checks of seeds and text.

Public for command plugins: a package that adds commands through the ``orch.cli``
entry-point group imports these from ``orch.cli.common``, as the built-in commands do;
nothing here imports a command, so a plugin never makes an import cycle with the app.

A model hub (``--models REGISTRY`` or ``$ORCH_MODELS``) is built by the factory the
``orch.services`` entry-point group names ``models``: the engine's CLI does not import the
package that provides it (``agents``).

Every recorded string is untrusted: both consoles are :class:`~orch.render.InertConsole`
and messages go through :func:`~orch.render.inert`, so no escape sequence from a record
reaches the terminal.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.text import Text

from orch._services import SERVICE_GROUP, command_services, service_factory, with_services
from orch.errors import CliError, OrchError, PipelineValidationError
from orch.render._terminal import (
    InertConsole,
    inert,
    inert_json,
)
from traces import ArtifactStore, KeyRing, TraceError, open_store, parse_trusted, require_writable

__all__ = [
    "SEED_MAX",
    "CliError",
    "JsonOpt",
    "ModelsOpt",
    "SinceOpt",
    "StoreOpt",
    "TrustOpt",
    "check_seed",
    "check_utf8",
    "emit_json",
    "err",
    "note",
    "open_cli_store",
    "out",
    "print_error",
    "read_checkpoint_file",
    "trusted_keys",
    "user_errors",
    "write_text",
    # services for a pipeline (the pipeline file's, and --models from orch.services)
    "SERVICE_GROUP",
    "command_services",
    "service_factory",
    "with_services",
]


def _console(stderr: bool = False) -> InertConsole:
    # Piped output is for grep and copy: never wrap a hash at rich's default 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return InertConsole(stderr=stderr, width=200 if wide else None)


out = _console()
err = _console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--models",
        help="Model registry TOML for the 'models' service (default: $ORCH_MODELS, else what "
        "the pipeline file's services() provides).",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store location: a directory, sqlite:///file.db, or memory:. "
        "Default: $ORCH_STORE, else .orch/ in the working directory.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
SEED_MAX = 2**63 - 1
"""The largest run seed: seeds are recorded as JSON integers, which every reader (and a
PostgreSQL ``bigint``) holds exactly up to here; negative seeds are refused to keep one range."""


def print_error(message: str, fix: str = "") -> None:
    """``error: MESSAGE[; fix: FIX]`` as one line on stderr. The message may quote recorded
    text, so it is made inert and never read as markup, and rich does not wrap it."""
    line = Text("error:", style="red")
    line.append(" " + inert(message) + (f"; fix: {inert(fix)}" if fix else ""))
    err.print(line, highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Turn user mistakes into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineValidationError as exc:
            print_error(f"pipeline {exc.pipeline!r} is invalid:")
            for p in exc.problems:
                err.print(Text(f"  - {inert(str(p))}"), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (OrchError, TraceError) as exc:
            print_error(str(exc), getattr(exc, "hint", ""))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()
    sys.stdout.write(inert_json(text) + "\n")


def write_text(text: str) -> None:
    """Write text (Mermaid) to stdout as it is, but with no control character in it."""
    sys.stdout.write(inert(text, multiline=True))


def open_cli_store(
    location: str | None, *, create: bool = False, writable: bool = False
) -> ArtifactStore:
    """The store at ``location``. Only a command that records (``create=True``) makes a
    missing one; ``writable=True`` refuses a store this process may only read, before
    anything is written (:class:`~traces.errors.StoreReadOnlyError`)."""
    st = open_store(location, create=create)
    if writable:
        try:
            require_writable(st)
        except TraceError:
            st.close()
            raise
    return st


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed``, or a :class:`CliError` when it is outside 0 to 2**63-1 (see :data:`SEED_MAX`)."""
    if not 0 <= seed <= SEED_MAX:
        raise CliError(
            f"{option} {seed} is out of range",
            f"give an integer from 0 to 2**63-1 ({SEED_MAX})",
        )
    return seed


def check_utf8(what: str, text: str) -> str:
    """``text``, or a :class:`CliError` naming the first byte that is not UTF-8 (Python turns
    such bytes of a command-line argument into lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        offset = len(text[: exc.start].encode("utf-8"))  # everything before it encodes
        code = ord(text[exc.start])
        # A byte b >= 0x80 that is not UTF-8 arrives as the lone surrogate U+DC00 + b.
        bad = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise CliError(
            f"{what} is not UTF-8 text: {bad} at byte offset {offset} of {text!r}",
            "pass it as UTF-8 (convert it with iconv -t utf-8), or write it to a UTF-8 file "
            "and pass KEY=@FILE",
        ) from None
    return text


def note(line: str) -> None:
    """One line on stderr that may quote the record: inert, never markup, never wrapped."""
    err.print(Text(inert(line)), highlight=False, soft_wrap=True)


TrustOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trust",
        help="A key whose signatures count: a verifier key (NAME+ID+KEY), a .pub file, or a "
        "key name in your keyring ($ORCH_KEYS). Repeatable. Default: every key of the keyring.",
    ),
]
SinceOpt = Annotated[
    Path | None,
    typer.Option(
        "--since",
        help="A signed checkpoint you kept earlier: the store's ledger must still hold every "
        "entry it covers, unchanged (catches a store rolled back or rewritten since).",
    ),
]


def trusted_keys(specs: list[str] | None) -> list[Any]:
    """The verifiers ``--trust`` names, or every key of the keyring when it names none."""
    ring = KeyRing()
    if specs:
        return [parse_trusted(spec, ring) for spec in specs]
    return [ring.verifier(info.name) for info in ring.list()]


def read_checkpoint_file(path: Path) -> bytes:
    """A checkpoint note the user kept (``--since``), or a one-line error."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(
            f"cannot read checkpoint {inert(str(path))}: {exc.strerror}",
            "give the file 'orch checkpoint -o FILE' wrote",
        ) from None
