"""The ``orch`` command line: run, runs, show, verify, replay, diff, plugins, tools, eval,
report, batch.

Thin: each command parses options, calls the library and renders. User mistakes (a bad path,
an unknown run, an invalid pipeline) print one clear line naming the thing and the fix, exit
code 2, before anything is created or written; a run that fails exits 1; verification that
finds tampering exits 1. Tracebacks are for bugs only. Commands that only read open the store
with ``create=False``, so a mistyped ``--store`` is an error, never a new empty store.

Every recorded string is untrusted: it is printed through :func:`orch.render.inert` as rich
``Text`` (never markup), and both consoles are :class:`~orch.render.InertConsole`, so no
escape sequence from a record reaches the terminal; ``--json`` escapes them as ``\\uXXXX``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import orjson
import typer
from rich.table import Table
from rich.text import Text

from traces import ArtifactStore, TraceError, to_canonical
from traces.canonical import is_key
from traces.open import open_store, require_writable
from traces.runview import load_run_head, load_run_view
from traces.verify import verify_run, verify_store

from .errors import OrchError, PipelineValidationError
from .loader import load_pipeline, load_services, split_target
from .render import InertConsole, inert, inert_json, run_summary, runs_table, step_tree

__all__ = ["app", "main"]

app = typer.Typer(
    name="orch",
    help="Auditable multi-model LLM ensembles: run pipelines, inspect and verify their records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _console(stderr: bool = False) -> InertConsole:
    # Piped output is for grep and copy: never wrap a hash at rich's default 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return InertConsole(stderr=stderr, width=200 if wide else None)


out = _console()
err = _console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

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


class CliError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


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
        except (OrchError, TraceError, CliError) as exc:
            print_error(str(exc), getattr(exc, "hint", ""))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()
    sys.stdout.write(inert_json(text) + "\n")


def _write(text: str) -> None:
    """Write text (Mermaid) to stdout as it is, but with no control character in it."""
    sys.stdout.write(inert(text, multiline=True))


def _store(location: str | None, *, create: bool = False, writable: bool = False) -> ArtifactStore:
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


def _services(target: str, models: str | None) -> dict[str, Any]:
    """The pipeline file's services, with the model hub from --models / $ORCH_MODELS."""
    services = load_services(target)
    registry = models or os.environ.get("ORCH_MODELS")
    if registry:
        from agents.models import ModelHub  # the CLI is where the packages are wired together

        services["models"] = ModelHub.load(registry)
    return services


async def _with_services(services: dict[str, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` and then close every service that can be closed, in the same loop."""
    try:
        return await call()
    finally:
        for service in services.values():
            close = getattr(service, "aclose", None)
            if close is not None:
                await close()


def _origin(target: str) -> str:
    """FILE:NAME with an absolute path, for the event log (``orch replay`` reads it back)."""
    path, name = split_target(target)
    return f"{Path(path).resolve()}:{name}"


def _read_input_file(key: str, name: str) -> str:
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise CliError(
            f"--input {key}: cannot read {name!r}: {exc.strerror}",
            "check the path after '@' (it is relative to the working directory)",
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"--input {key}: file {name!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start} cannot be decoded",
            f"convert it, e.g. iconv -f latin1 -t utf-8 {name} > {name}.utf8",
        ) from None
    # As a text-mode read would: the same file gives the same input on every platform.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_inputs(pairs: list[str], types: dict[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as pipeline inputs. A value is JSON when it parses, else text; for
    a ``str`` input a JSON string literal (``q='"hi"'``) is decoded, other text is taken as
    it is (so ``q='"\\"hi\\""'`` passes text with quotes). ``KEY=@FILE`` reads a UTF-8 file,
    taken as it is for a ``str`` input."""
    values: dict[str, Any] = {}
    for pair in pairs:
        check_utf8(f"--input {pair.partition('=')[0]!r}", pair)
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--input {pair!r} is not KEY=VALUE", "e.g. --input question='What?'")
        from_file = raw.startswith("@")
        if from_file:
            raw = _read_input_file(key, raw[1:])
        tp = types.get(key)
        if tp is str:
            values[key] = raw if from_file else _text_value(raw)
            continue
        try:  # JSON when it parses (numbers, lists, objects), else the raw text
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def _text_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            decoded = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(decoded, str):
            return decoded
    return raw


@app.command()
@user_errors
def run(
    target: Annotated[str, typer.Argument(help="FILE.py[:NAME]; NAME defaults to 'pipeline'.")],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="Pipeline input KEY=VALUE: JSON when it parses, else text (so '\"a b\"' is "
            "the text a b); KEY=@FILE reads a UTF-8 file as it is. Repeatable.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Run seed, 0 to 2**63-1: every step's RNG derives from it.")
    ] = 0,
    store: StoreOpt = None,
    max_concurrency: Annotated[int, typer.Option(help="Steps running at once.")] = 64,
    models: ModelsOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue this crashed, killed, cancelled or failed run: every step and "
            "effect that it (or any earlier resume of it) finished is reused, not run or "
            "issued again (uses the run's inputs and seed).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="With --resume: when another process works on the run (its original or "
            "another resume), wait for it instead of stopping.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline defined in a Python file and record it.

    Ctrl-C (or SIGTERM) stops the run cleanly: unfinished steps are recorded as cancelled
    and the command prints how to resume it; a second Ctrl-C exits at once. With
    $ORCH_SIGNING_KEY set (a key name or a PEM file), a signed checkpoint of the store's
    ledger is stored after the run.
    """
    from .interrupt import EXIT_CODES, under_signals
    from .runtime import arun, new_run_id, validate_inputs
    from .sources import find_sources, record_sources

    check_seed(seed)
    pipeline = load_pipeline(target)
    if resume is not None and (input or seed):
        raise CliError(
            "--resume uses the recorded inputs and seed of the run it continues",
            f"drop --input and --seed: orch run {target} --resume {resume}",
        )
    if wait and resume is None:
        raise CliError("--wait is for --resume", f"orch run {target} --resume RUN --wait")
    inputs = _parse_inputs(input or [], dict(pipeline.inputs))
    if resume is None:
        validate_inputs(pipeline, inputs)  # a wrong input is reported before a store is made
    services = _services(target, models)
    signer = _signing_key()
    run_id = new_run_id()
    # A run to resume must already be in the store: only a new run makes a store.
    with _store(store, create=resume is None, writable=True) as st:
        where = "" if store is None else f" --store {store}"
        again_hint = f"orch run {target} --resume {run_id}{where}"

        def first(signum: int) -> None:
            name = signal.Signals(signum).name
            err.print(
                Text(inert(f"{name}: stopping run {run_id}; press Ctrl-C again to quit now")),
                soft_wrap=True,
            )

        def again(signum: int) -> None:
            err.print(
                Text(
                    inert(
                        f"stopped at once: run {run_id} is left unfinished (nothing it "
                        f"finished is lost); resume it with: {again_hint}"
                    )
                ),
                soft_wrap=True,  # a command to copy: never folded
            )

        async def work(control: Any) -> Any:
            return await arun(
                pipeline,
                inputs,
                store=st,
                seed=seed,
                max_concurrency=max_concurrency,
                run_id=run_id,
                resume=st.resolve_run(resume) if resume else None,
                wait=wait,
                origin={
                    "pipeline": _origin(target),
                    # The code itself, so that `orch replay` imports only what ran.
                    "sources": record_sources(st, find_sources(split_target(target)[0])),
                },
                services=services,
                control=control,
            )

        result, stopped_by = anyio.run(
            _with_services,
            services,
            partial(under_signals, work, first=first, again=again),
        )
        checkpoint = None
        if signer is not None:
            from traces.ledger import ledger_of

            ledger = ledger_of(st)
            if ledger.supported:
                ledger.checkpoint([signer])
                checkpoint = ledger.tree().size
        if as_json:
            emit_json(
                {
                    "run_id": result.run_id,
                    "status": result.status,
                    "root_hash": result.root_hash,
                    "spec_hash": result.record.spec_hash,
                    "seed": result.record.seed,
                    "store": st.location,
                    "outputs": {k: to_canonical(v) for k, v in result.outputs.items()},
                    "error": result.error.model_dump() if result.error else None,
                    "cost_usd": load_run_view(st, result.run_id).cost_usd,
                    "checkpoint": checkpoint,
                }
            )
        else:
            out.print(run_summary(load_run_view(st, result.run_id)))
    if result.status == "cancelled":
        err.print(
            Text(
                inert(
                    f"run {result.run_id} was cancelled and recorded; resume it with: "
                    f"orch run {target} --resume {result.run_id}{where}"
                )
            ),
            soft_wrap=True,  # a command to copy: never folded
        )
        raise typer.Exit(EXIT_CODES.get(signal.Signals(stopped_by), 1) if stopped_by else 1)
    if not result.ok:
        raise typer.Exit(1)


def _signing_key() -> Any:
    """The signer $ORCH_SIGNING_KEY names (a key of the keyring, or a PEM file), or None."""
    spec = os.environ.get("ORCH_SIGNING_KEY")
    if not spec:
        return None
    from traces.keys import KeyRing

    return KeyRing().load_signer(spec)


@app.command()
@user_errors
def runs(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="Show the newest N runs.")] = 50,
) -> None:
    """List the runs in the store, newest last, with their status: a run still marked
    running whose process is gone (it waits for a resume) says so."""
    from .lineage import process_gone

    with _store(store) as st:
        heads = [load_run_head(st, r) for r in st.run_ids()]
        heads.sort(key=lambda h: (h.started_at, h.run_id))
        heads = heads[-limit:]
        gone = {h.run_id for h in heads if process_gone(st, h)}
    if as_json:
        emit_json([h.model_dump(mode="json") | {"process_gone": h.run_id in gone} for h in heads])
    elif not heads:
        out.print(Text(f"no runs in {inert(st.location)}"))
    else:
        out.print(runs_table(heads, gone))


@app.command()
@user_errors
def show(
    target: Annotated[
        str, typer.Argument(help="A run id (or unique prefix), or FILE.py[:NAME] with --graph.")
    ],
    graph: Annotated[bool, typer.Option("--graph", help="Print the pipeline as Mermaid.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run: summary and a tree of steps with decisions and timings.

    Given a router state version (sha256:...) instead, print that state's history: each
    version back to the initial one, with a summary of what it holds.
    """
    from .mermaid import pipeline_to_mermaid

    if graph and (target.endswith(".py") or ".py:" in target):
        _write(pipeline_to_mermaid(_inert_tree(load_pipeline(target).spec)))
        return
    if target.startswith("sha256:") and not is_key(target):
        raise CliError(
            f"{target!r} is neither a run id nor a state version (sha256: + 64 hex digits)",
            "give a run id or prefix from 'orch runs', or a router state version in full",
        )
    with _store(store) as st:
        if target.startswith("sha256:"):
            _show_state_history(st, target, as_json)
            return
        view = load_run_view(st, st.resolve_run(target))
        if graph:
            # Recorded names become Mermaid labels: one line each, no control characters.
            spec = _inert_tree(view.spec)
            _write(pipeline_to_mermaid(spec, _inert_tree(view.statuses())))
        elif as_json:
            emit_json(
                {
                    "head": view.head.model_dump(mode="json"),
                    "record": view.record.model_dump(mode="json") if view.record else None,
                    "steps": {
                        sid: {
                            "record": s.record.model_dump(mode="json"),
                            "key": s.key,
                            "duration": s.duration,
                            "decisions": [d.model_dump(mode="json") for d in s.decisions],
                            "effects": [e.model_dump(mode="json") for e in s.effects],
                            "cost_usd": s.cost_usd,
                            "attempts": s.attempts,
                            "failed_attempts": [
                                {
                                    "attempt": f.attempt,
                                    "error": f.error.model_dump(mode="json"),
                                    "retried": f.retried,
                                }
                                for f in s.failed_attempts
                            ],
                        }
                        for sid, s in view.steps.items()
                    },
                    "cost_usd": view.cost_usd,
                    "usage": view.usage(),
                }
            )
        else:
            from .lineage import process_gone

            out.print(run_summary(view, gone=process_gone(st, view.head)))
            out.print(step_tree(view))


def _inert_tree(value: Any) -> Any:
    """``value`` (JSON data) with every string, keys too, made :func:`~orch.render.inert`."""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {_inert_tree(k): _inert_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inert_tree(v) for v in value]
    return value


def _show_state_history(st: Any, version: str, as_json: bool) -> None:
    import routers  # noqa: F401 - registers the built-in router state formats
    from routers.state import load_state, state_history

    try:
        load_state(st, version)
        history = state_history(st, version)
    except (LookupError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        emit_json(
            [
                {
                    "version": h.version,
                    "format": getattr(h.state, "format", None),
                    "parent": getattr(h.state, "parent", None),
                    "summary": h.summary,
                }
                for h in history
            ]
        )
        return
    table = Table(title=f"router state history ({len(history)} versions, newest first)")
    for col in ("version", "format", "summary"):
        table.add_column(col)
    for h in history:
        table.add_row(
            Text(inert(h.version[:19])),
            Text(inert(str(getattr(h.state, "format", "-")))),
            Text(inert(h.summary)),
        )
    out.print(table)


@app.command()
@user_errors
def replay(
    run_id: Annotated[
        str,
        typer.Argument(
            help="The run to replay (id or unique prefix), or an evidence bundle "
            "(.orchpack), replayed in memory with the pipeline source it carries."
        ),
    ],
    pipeline_target: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            help="FILE.py[:NAME] to replay with; default: the file the run was made from.",
        ),
    ] = None,
    models: ModelsOpt = None,
    store: StoreOpt = None,
    no_record: Annotated[
        bool,
        typer.Option(
            "--no-record",
            help="Write nothing to the store: the replay runs on an in-memory overlay of it "
            "(as it does on a read-only store).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a recorded run with every effect served from its record (no network).

    Without --pipeline, the file the run was made from is imported only once every source
    file the run records is on disk as recorded (hashed first, never run); a changed or
    missing one is refused with exit code 2.

    Exit 0 when nothing diverged and the root hash is the same; 1 with a report of the first
    diverging step and effect, both request hashes and a field-level diff otherwise.
    """
    from .replay import areplay, replay_store

    if run_id.endswith(".orchpack"):
        rid, report, pipeline, sources = _replay_bundle(Path(run_id), pipeline_target, models)
    else:
        with _store(store) as base:
            rid = base.resolve_run(run_id)
            target, sources = _recorded_origin(base, rid, pipeline_target)
            st = replay_store(base, record=not no_record)
            if st is not base:
                why = "--no-record" if no_record else f"store {base.location} is read-only"
                _note(f"note: this replay is not recorded ({why}); it writes to memory only")
            pipeline = load_pipeline(target)
            services = _services(target, models)
            report = anyio.run(
                _with_services, services, partial(areplay, pipeline, rid, st, services=services)
            )
    kept = (
        f"replay recorded as run {report.result.run_id}"
        if report.recorded
        else "replay not recorded (nothing was written to the store)"
    )
    if as_json:
        emit_json(report.to_json() | {"sources": sources})
    elif report.clean:
        out.print(
            f"[green]✔ clean replay[/] of {rid}: same root hash {report.expected_root}\n"
            f"  {kept}; no effect was called"
        )
    else:
        first = report.first_divergence
        out.print(f"[red]✘ DIVERGED[/] replay of run {rid} (pipeline {pipeline.name!r})")
        if first is not None:
            # One line per part, each inert: a recorded target or field value holding a
            # newline must not print as a line of this report.
            head, *changes = first.describe().split("\n    ")
            out.print("  first divergence: " + inert(head), markup=False, highlight=False)
            for change in changes:
                out.print("    " + inert(change), markup=False, highlight=False)
        else:
            out.print(
                f"  root hash {report.result.root_hash} differs from the record's "
                f"{report.expected_root} although every effect matched (agent code changed?)"
            )
        if report.spec_changed:
            out.print("  note: the pipeline spec changed since the run (code, prompts or config)")
        out.print(f"  {kept}")
    if not report.clean:
        raise typer.Exit(1)


@app.command()
@user_errors
def diff(
    run_a: Annotated[str, typer.Argument(help="First run (id or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="Second run (id or unique prefix).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which steps, decisions and outputs differ between two runs. Exit 1 when any do."""
    from traces.diff import diff_runs

    with _store(store) as st:
        d = diff_runs(st, st.resolve_run(run_a), st.resolve_run(run_b))
    if as_json:
        emit_json(d.model_dump(mode="json") | {"identical": d.identical})
    elif d.identical:
        same_root = Text("identical", style="green")
        same_root.append(inert(f": {d.run_a} and {d.run_b} have the same root hash"))
        out.print(same_root)
    else:
        same = " (same root hash)" * d.same_root
        out.print(Text(inert(f"runs {d.run_a} and {d.run_b} differ") + same))
        for line in d.header:
            out.print(Text(f"  {inert(line)}"), highlight=False)
        for sd in d.steps:
            out.print(Text(f"  step {inert(repr(sd.step_id))}: {inert(sd.change)}"))
            for detail in sd.details:
                out.print(Text(f"      {inert(detail)}"), highlight=False)
        for line in d.outputs:
            out.print(Text(f"  output {inert(line)}"), highlight=False)
    if not d.identical:
        raise typer.Exit(1)


def _replay_bundle(
    path: Path, explicit: str | None, models: str | None
) -> tuple[str, Any, Any, dict[str, Any]]:
    """Replay the run an evidence bundle holds, in memory, once the bundle verified: with the
    pipeline source the bundle carries, written to a temporary folder (the recorded code
    itself), or with ``--pipeline``."""
    import tempfile

    from traces.bundle import open_bundle

    from .replay import areplay, write_recorded_sources

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(
            f"cannot read {inert(str(path))}: {exc.strerror}", "give the file 'orch export' wrote"
        ) from None
    rid, st = open_bundle(data)
    with tempfile.TemporaryDirectory(prefix="orch-replay-") as folder:
        if explicit is None:
            target = write_recorded_sources(st, rid, Path(folder))
            _note(f"replaying run {rid} from {path} with the pipeline source it carries")
        else:
            target = explicit
        pipeline = load_pipeline(target)
        services = _services(target, models)
        report = anyio.run(
            _with_services, services, partial(areplay, pipeline, rid, st, services=services)
        )
    report.recorded = False  # a bundle's store lives in memory: nothing is kept
    sources: dict[str, Any] = {
        "recorded": None,
        "enforced": explicit is None,
        "changed": [],
        "bundle": str(path),
    }
    return rid, report, pipeline, sources


def _recorded_origin(
    st: ArtifactStore, run_id: str, explicit: str | None
) -> tuple[str, dict[str, Any]]:
    """The FILE.py:NAME to replay ``run_id`` with, and what was checked (for --json).

    ``explicit`` (--pipeline) is taken as given, with a note on the recorded sources. Else the
    recorded file, said on stderr before anything is imported, and only when every source file
    the run records is on disk as recorded: each one that is not is one error line naming it
    and both hashes, exit code 2."""
    from .replay import check_recorded_pipeline

    try:
        found = check_recorded_pipeline(st, run_id)
    except OrchError:
        if explicit is None:
            raise
        found = None  # a record orch cannot read: its sources cannot even be compared
    recorded = None if found is None else found.sources
    changes = () if found is None else found.changes
    summary: dict[str, Any] = {
        "recorded": None if recorded is None else len(recorded.files),
        "enforced": explicit is None and recorded is not None,
        "changed": [c.to_json() for c in changes],
    }
    if explicit is not None:
        if recorded is None:
            _note(f"note: run {run_id} does not record its source files, so nothing was checked")
        else:
            differ = ", ".join(c.path for c in changes)
            _note(
                f"note: --pipeline given: the {len(recorded.files)} recorded source file(s) "
                "were not checked against it"
                + (f"; differing on disk now: {differ}" if differ else "")
            )
        return explicit, summary
    if found is None:
        raise CliError(
            f"run {run_id} does not record which file its pipeline came from (it was not "
            "started by 'orch run')",
            f"name it: orch replay {run_id} --pipeline FILE.py:NAME",
        )
    listed = (
        f"the record lists {len(recorded.files)} source file(s) under {recorded.root}"
        if recorded is not None
        else "the record lists no source files"
    )
    _note(f"replay of run {run_id}: will import {found.file}, pipeline {found.name!r}; {listed}")
    if recorded is None:
        _note(
            f"note: run {run_id} was recorded before orch recorded source files: its code "
            "could not be checked before import"
        )
        return found.target, summary
    for i, change in enumerate(changes, 1):
        print_error(
            f"source file {change.file} changed since run {run_id}: recorded "
            f"{change.recorded}, now {change.now or 'missing'}; nothing was imported",
            # once, after the last: to replay the code as it is now, say so
            f"replay with the changed code on purpose: orch replay {run_id} --pipeline "
            f"{found.target}"
            if i == len(changes)
            else "",
        )
    if changes:
        raise typer.Exit(2)
    _note(f"checked: all {len(recorded.files)} recorded source file(s) are unchanged")
    return found.target, summary


def _note(line: str) -> None:
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
    from traces.keys import KeyRing, parse_trusted

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


_EVIDENCE_SUFFIXES = (".orchpack", ".orchproof")


@app.command()
@user_errors
def verify(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Run id or prefix (omit with --all), or an evidence file (.orchpack bundle, "
            ".orchproof disclosure) to check with no store."
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Verify every artifact, run and the store's ledger.")
    ] = False,
    since: SinceOpt = None,
    trust: TrustOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every hash of a run (artifacts, step records, Merkle root, event chain) and
    check it against the store's ledger; with --all, every run, the ledger and its
    checkpoints; or check an evidence file made by 'orch export' / 'orch prove'."""
    if target is not None and target.endswith(_EVIDENCE_SUFFIXES):
        from .cli_audit import verify_evidence

        raise typer.Exit(verify_evidence(Path(target), trust or [], since, as_json))
    if (target is None) == (not all_):
        raise CliError("give a run id or --all (not both)", "orch verify RUN  |  orch verify --all")
    if since is not None and not all_:
        raise CliError("--since checks the whole store's ledger", "orch verify --all --since FILE")
    kept = read_checkpoint_file(since) if since is not None else None
    keys = trusted_keys(trust)
    with _store(store) as st:
        if all_:
            report = verify_store(st, since=kept, trusted=keys)
        else:
            report = verify_run(st, st.resolve_run(target or ""))
    if as_json:
        emit_json(report.model_dump(mode="json") | {"ok": report.ok})
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    # Problems quote what they found in the store: a tampered file is attacker-written text.
    label = inert(report.run_id or "store")
    if report.ok:
        state = "complete" if report.complete else "incomplete (the run did not finish)"
        checked = inert(", ".join(f"{n} {k}" for k, n in report.checked.items()))
        line = Text("✔ intact", style="green")
        line.append(f" {label}: {state}; {checked} verified")
        out.print(line)
        if report.root_hash:
            out.print(Text(f"  root hash {inert(report.root_hash)}"))
    else:
        line = Text("✘ TAMPERED", style="red")
        line.append(f" {label}: {len(report.problems)} problem(s)")
        out.print(line)
        for p in report.problems:
            line = Text("  - ")
            line.append(inert(p.subject), style="bold")
            line.append(f": {inert(p.detail)} ")
            line.append(f"({inert(p.kind)})", style="dim")
            out.print(line, highlight=False)
    for w in report.warnings:
        line = Text("  ")
        line.append("warning:", style="yellow")
        line.append(f" {inert(w)}")
        out.print(line, highlight=False)


@app.command()
@user_errors
def plugins(as_json: JsonOpt = False) -> None:
    """List installed plugin agents and routers (entry points orch.agents, orch.routers)."""
    from dataclasses import asdict

    from rich.table import Table

    from .plugins import list_plugins

    infos = list_plugins()
    if as_json:
        emit_json([asdict(i) for i in infos])
        return
    if not infos:
        out.print("no plugins installed (entry-point groups orch.agents, orch.routers)")
        return
    table = Table(title="plugins")
    for col in ("name", "group", "package", "agent", "status"):
        table.add_column(col)
    for i in infos:  # names and errors come from installed packages: text, never markup
        status = Text("ok", style="green") if i.ok else Text("broken", style="red")
        if not i.ok:
            status.append(f": {inert(str(i.error))}")
        table.add_row(
            Text(inert(i.name)),
            Text(inert(i.group)),
            Text(inert(f"{i.package} {i.version}")),
            Text(inert(i.agent or i.target)),
            status,
        )
    out.print(table)


def _add_subcommands() -> None:
    from .cli_audit import export_command, prove_command
    from .cli_batch import batch_command
    from .cli_eval import eval_command
    from .cli_keys import checkpoint_command, keys_app
    from .cli_report import report_command
    from .cli_tools import tools_app

    app.add_typer(tools_app, name="tools")
    app.add_typer(keys_app, name="keys")
    app.command("checkpoint")(checkpoint_command)
    app.command("eval")(eval_command)
    app.command("report")(report_command)
    app.command("batch")(batch_command)
    app.command("export")(export_command)
    app.command("prove")(prove_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    # `python -m orch.cli` runs this file as __main__, a second module beside orch.cli; the
    # command modules import orch.cli, so the app they register on must be that one.
    from orch.cli import main as _main

    _main()
else:
    _add_subcommands()
