"""The ``orch`` command line: run, runs, show, verify, replay, diff, plugins, tools, eval,
report, batch.

Thin: each command parses options, calls the library and renders. User mistakes (a bad path,
an unknown run, an invalid pipeline) print one clear line and a hint, exit code 2; a run that
fails exits 1; verification that finds tampering exits 1. Tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import orjson
import typer
from rich.console import Console
from rich.table import Table

from traces import ArtifactStore, TraceError, to_canonical
from traces.open import open_store
from traces.runview import load_run_head, load_run_view
from traces.verify import verify_run, verify_store

from .errors import OrchError, PipelineValidationError
from .loader import load_pipeline, load_services, split_target
from .render import run_summary, runs_table, step_tree

__all__ = ["app", "main"]

app = typer.Typer(
    name="orch",
    help="Auditable multi-model LLM ensembles: run pipelines, inspect and verify their records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _console(stderr: bool = False) -> Console:
    # Piped output is for grep and copy: never wrap a hash at rich's default 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=200 if wide else None)


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


class CliError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def user_errors(fn: F) -> F:
    """Turn user mistakes into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineValidationError as exc:
            err.print(f"[red]error:[/] pipeline {exc.pipeline!r} is invalid:")
            for p in exc.problems:
                err.print(f"  - {p}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except (OrchError, TraceError, CliError) as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            hint = getattr(exc, "hint", "")
            if hint:
                err.print(f"[dim]hint: {hint}[/]")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    sys.stdout.write(
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode() + "\n"
    )


def _store(location: str | None) -> ArtifactStore:
    return open_store(location)


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


def _parse_inputs(pairs: list[str], types: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--input {pair!r} is not KEY=VALUE", "e.g. --input question='What?'")
        if raw.startswith("@"):
            try:
                raw = Path(raw[1:]).read_text()
            except OSError as exc:
                raise CliError(f"--input {key}: cannot read {raw[1:]!r}: {exc.strerror}") from exc
        tp = types.get(key)
        if tp is str:
            values[key] = raw
            continue
        try:  # JSON when it parses (numbers, lists, objects), else the raw text
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


@app.command()
@user_errors
def run(
    target: Annotated[str, typer.Argument(help="FILE.py[:NAME]; NAME defaults to 'pipeline'.")],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="Pipeline input KEY=VALUE (JSON or text; @file reads a file). Repeatable.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed: every step's RNG derives from it.")] = 0,
    store: StoreOpt = None,
    max_concurrency: Annotated[int, typer.Option(help="Steps running at once.")] = 64,
    models: ModelsOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue this crashed, killed or failed run: finished steps are not run "
            "again and their effects are not re-issued (uses the run's inputs and seed).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline defined in a Python file and record it."""
    from .runtime import arun

    pipeline = load_pipeline(target)
    if resume is not None and (input or seed):
        raise CliError(
            "--resume uses the recorded inputs and seed of the run it continues",
            f"drop --input and --seed: orch run {target} --resume {resume}",
        )
    inputs = _parse_inputs(input or [], dict(pipeline.inputs))
    services = _services(target, models)
    with _store(store) as st:
        result = anyio.run(
            _with_services,
            services,
            partial(
                arun,
                pipeline,
                inputs,
                store=st,
                seed=seed,
                max_concurrency=max_concurrency,
                resume=st.resolve_run(resume) if resume else None,
                origin={"pipeline": _origin(target)},
                services=services,
            ),
        )
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
                }
            )
        else:
            out.print(run_summary(load_run_view(st, result.run_id)))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@user_errors
def runs(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="Show the newest N runs.")] = 50,
) -> None:
    """List the runs in the store, newest last."""
    with _store(store) as st:
        heads = [load_run_head(st, r) for r in st.run_ids()]
    heads.sort(key=lambda h: (h.started_at, h.run_id))
    heads = heads[-limit:]
    if as_json:
        emit_json([h.model_dump(mode="json") for h in heads])
    elif not heads:
        out.print(f"no runs in {st.location}")
    else:
        out.print(runs_table(heads))


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
        sys.stdout.write(load_pipeline(target).to_mermaid())
        return
    with _store(store) as st:
        if target.startswith("sha256:"):
            _show_state_history(st, target, as_json)
            return
        view = load_run_view(st, st.resolve_run(target))
        if graph:
            sys.stdout.write(pipeline_to_mermaid(view.spec, view.statuses()))
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
                        }
                        for sid, s in view.steps.items()
                    },
                    "cost_usd": view.cost_usd,
                    "usage": view.usage(),
                }
            )
        else:
            out.print(run_summary(view))
            out.print(step_tree(view))


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
        table.add_row(h.version[:19], str(getattr(h.state, "format", "-")), h.summary)
    out.print(table)


@app.command()
@user_errors
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (id or unique prefix).")],
    pipeline_target: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            help="FILE.py[:NAME] to replay with; default: the file the run was made from.",
        ),
    ] = None,
    models: ModelsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a recorded run with every effect served from its record (no network).

    Exit 0 when nothing diverged and the root hash is the same; 1 with a report of the first
    diverging step and effect, both request hashes and a field-level diff otherwise.
    """
    from .replay import areplay

    with _store(store) as st:
        rid = st.resolve_run(run_id)
        target = pipeline_target or _recorded_origin(st, rid)
        pipeline = load_pipeline(target)
        services = _services(target, models)
        report = anyio.run(
            _with_services, services, partial(areplay, pipeline, rid, st, services=services)
        )
    if as_json:
        emit_json(report.to_json())
    elif report.clean:
        out.print(
            f"[green]✔ clean replay[/] of {rid}: same root hash {report.expected_root}\n"
            f"  replay recorded as run {report.result.run_id}; no effect was called"
        )
    else:
        first = report.first_divergence
        out.print(f"[red]✘ DIVERGED[/] replay of run {rid} (pipeline {pipeline.name!r})")
        if first is not None:
            out.print("  first divergence: " + first.describe(), markup=False, highlight=False)
        else:
            out.print(
                f"  root hash {report.result.root_hash} differs from the record's "
                f"{report.expected_root} although every effect matched (agent code changed?)"
            )
        if report.spec_changed:
            out.print("  note: the pipeline spec changed since the run (code, prompts or config)")
        out.print(f"  replay recorded as run {report.result.run_id}")
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
        out.print(f"[green]identical[/]: {d.run_a} and {d.run_b} have the same root hash")
    else:
        out.print(f"runs {d.run_a} and {d.run_b} differ" + (" (same root hash)" * d.same_root))
        for line in d.header:
            out.print(f"  {line}", markup=False, highlight=False)
        for sd in d.steps:
            out.print(f"  step {sd.step_id!r}: {sd.change}", markup=False, highlight=False)
            for detail in sd.details:
                out.print(f"      {detail}", markup=False, highlight=False)
        for line in d.outputs:
            out.print(f"  output {line}", markup=False, highlight=False)
    if not d.identical:
        raise typer.Exit(1)


def _recorded_origin(st: ArtifactStore, run_id: str) -> str:
    from .replay import recorded_origin

    found = recorded_origin(st, run_id)
    if found is not None:
        return found
    raise CliError(
        f"run {run_id} does not record which file its pipeline came from (it was not started "
        "by 'orch run')",
        f"name it: orch replay {run_id} --pipeline FILE.py:NAME",
    )


@app.command()
@user_errors
def verify(
    target: Annotated[str | None, typer.Argument(help="Run id or prefix; omit with --all.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Verify every artifact and run.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every hash of a run (artifacts, step records, Merkle root, event chain)."""
    if (target is None) == (not all_):
        raise CliError("give a run id or --all (not both)", "orch verify RUN  |  orch verify --all")
    with _store(store) as st:
        report = verify_store(st) if all_ else verify_run(st, st.resolve_run(target or ""))
    if as_json:
        emit_json(report.model_dump(mode="json") | {"ok": report.ok})
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    label = report.run_id or "store"
    if report.ok:
        state = "complete" if report.complete else "incomplete (the run did not finish)"
        out.print(
            f"[green]✔ intact[/] {label}: {state}; "
            + ", ".join(f"{n} {k}" for k, n in report.checked.items())
            + " verified"
        )
        if report.root_hash:
            out.print(f"  root hash {report.root_hash}")
    else:
        out.print(f"[red]✘ TAMPERED[/] {label}: {len(report.problems)} problem(s)")
        for p in report.problems:
            out.print(f"  - [bold]{p.subject}[/]: {p.detail} [dim]({p.kind})[/]", highlight=False)
    for w in report.warnings:
        out.print(f"  [yellow]warning:[/] {w}", highlight=False)


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
    for i in infos:
        status = "[green]ok[/]" if i.ok else f"[red]broken[/]: {i.error}"
        table.add_row(i.name, i.group, f"{i.package} {i.version}", i.agent or i.target, status)
    out.print(table)


def _add_subcommands() -> None:
    from .cli_batch import batch_command
    from .cli_eval import eval_command
    from .cli_report import report_command
    from .cli_tools import tools_app

    app.add_typer(tools_app, name="tools")
    app.command("eval")(eval_command)
    app.command("report")(report_command)
    app.command("batch")(batch_command)


_add_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
