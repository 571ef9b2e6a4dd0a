"""``orch replay`` and ``orch diff``: re-run a recorded run offline, compare two runs."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.text import Text

from orch._loader import load_pipeline
from orch._replay import areplay, check_recorded_pipeline, replay_store, write_recorded_sources
from orch.cli.common import (
    CliError,
    JsonOpt,
    ModelsOpt,
    StoreOpt,
    command_services,
    emit_json,
    note,
    open_cli_store,
    out,
    print_error,
    user_errors,
    with_services,
)
from orch.errors import OrchError
from orch.render._terminal import (
    inert,
)
from traces import ArtifactStore, diff_runs, open_bundle

__all__ = ["diff_command", "recorded_target", "replay_command"]


@user_errors
def replay_command(
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
    if run_id.endswith(".orchpack"):
        rid, report, pipeline, sources = _replay_bundle(Path(run_id), pipeline_target, models)
    else:
        rid, report, pipeline, sources = _replay_in_store(
            run_id, pipeline_target, models, store, no_record
        )
    if as_json:
        emit_json(report.to_json() | {"sources": sources})
    else:
        _print_replay(report, rid, pipeline)
    if not report.clean:
        raise typer.Exit(1)


@user_errors
def diff_command(
    run_a: Annotated[str, typer.Argument(help="First run (id or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="Second run (id or unique prefix).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which steps, decisions and outputs differ between two runs. Exit 1 when any do."""
    with open_cli_store(store) as st:
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


def _replay_in_store(
    run_id: str, explicit: str | None, models: str | None, store: str | None, no_record: bool
) -> tuple[str, Any, Any, dict[str, Any]]:
    """Replay a run of the store, recorded as a new run unless ``no_record`` or the store is
    read-only (then on an in-memory overlay)."""
    with open_cli_store(store) as base:
        rid = base.resolve_run(run_id)
        target, sources = recorded_target(base, rid, explicit)
        st = replay_store(base, record=not no_record)
        if st is not base:
            why = "--no-record" if no_record else f"store {base.location} is read-only"
            note(f"note: this replay is not recorded ({why}); it writes to memory only")
        pipeline = load_pipeline(target)
        services = command_services(target, models)
        report = anyio.run(
            with_services, services, partial(areplay, pipeline, rid, st, services=services)
        )
    return rid, report, pipeline, sources


def _print_replay(report: Any, rid: str, pipeline: Any) -> None:
    kept = (
        f"replay recorded as run {report.result.run_id}"
        if report.recorded
        else "replay not recorded (nothing was written to the store)"
    )
    if report.clean:
        out.print(
            f"[green]✔ clean replay[/] of {rid}: same root hash {report.expected_root}\n"
            f"  {kept}; no effect was called"
        )
        return
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


def _replay_bundle(
    path: Path, explicit: str | None, models: str | None
) -> tuple[str, Any, Any, dict[str, Any]]:
    """Replay the run an evidence bundle holds, in memory, once the bundle verified: with the
    pipeline source the bundle carries, written to a temporary folder (the recorded code
    itself), or with ``--pipeline``."""

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
            note(f"replaying run {rid} from {path} with the pipeline source it carries")
        else:
            target = explicit
        pipeline = load_pipeline(target)
        services = command_services(target, models)
        report = anyio.run(
            with_services, services, partial(areplay, pipeline, rid, st, services=services)
        )
    report.recorded = False  # a bundle's store lives in memory: nothing is kept
    sources: dict[str, Any] = {
        "recorded": None,
        "enforced": explicit is None,
        "changed": [],
        "bundle": str(path),
    }
    return rid, report, pipeline, sources


def recorded_target(
    st: ArtifactStore, run_id: str, explicit: str | None, what: str = "replay"
) -> tuple[str, dict[str, Any]]:
    """The FILE.py:NAME to ``what`` (replay, answer) ``run_id`` with, and what was checked
    (for --json).

    ``explicit`` (--pipeline) is taken as given, with a note on the recorded sources. Else the
    recorded file, said on stderr before anything is imported, and only when every source file
    the run records is on disk as recorded: each one that is not is one error line naming it
    and both hashes, exit code 2."""
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
            note(f"note: run {run_id} does not record its source files, so nothing was checked")
        else:
            differ = ", ".join(c.path for c in changes)
            note(
                f"note: --pipeline given: the {len(recorded.files)} recorded source file(s) "
                "were not checked against it"
                + (f"; differing on disk now: {differ}" if differ else "")
            )
        return explicit, summary
    if found is None:
        raise CliError(
            f"run {run_id} does not record which file its pipeline came from (it was not "
            "started by 'orch run')",
            f"name it: orch {what} {run_id} --pipeline FILE.py:NAME",
        )
    listed = (
        f"the record lists {len(recorded.files)} source file(s) under {recorded.root}"
        if recorded is not None
        else "the record lists no source files"
    )
    note(f"{what} of run {run_id}: will import {found.file}, pipeline {found.name!r}; {listed}")
    if recorded is None:
        note(
            f"note: run {run_id} was recorded before orch recorded source files: its code "
            "could not be checked before import"
        )
        return found.target, summary
    for i, change in enumerate(changes, 1):
        print_error(
            f"source file {change.file} changed since run {run_id}: recorded "
            f"{change.recorded}, now {change.now or 'missing'}; nothing was imported",
            # once, after the last: to use the code as it is now, say so
            f"{what} with the changed code on purpose: orch {what} {run_id} --pipeline "
            f"{found.target}"
            if i == len(changes)
            else "",
        )
    if changes:
        raise typer.Exit(2)
    note(f"checked: all {len(recorded.files)} recorded source file(s) are unchanged")
    return found.target, summary
