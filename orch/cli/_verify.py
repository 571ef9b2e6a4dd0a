"""``orch verify``: recompute a run's or a whole store's hashes, or check an evidence file.

Verifying a whole store shows a progress bar on stderr when stderr is a terminal (phase and
count, from :func:`traces.verify_store`'s progress hook); stdout and ``--json`` are the same
with it or without.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from orch.cli._audit import verify_evidence
from orch.cli.common import (
    CliError,
    JsonOpt,
    SinceOpt,
    StoreOpt,
    TrustOpt,
    emit_json,
    err,
    open_cli_store,
    out,
    read_checkpoint_file,
    trusted_keys,
    user_errors,
)
from orch.render._terminal import (
    inert,
)
from traces import ArtifactStore, Verifier, VerifyReport, verify_run, verify_store

__all__ = ["verify_command"]

_EVIDENCE_SUFFIXES = (".orchpack", ".orchproof")


@user_errors
def verify_command(
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
        raise typer.Exit(verify_evidence(Path(target), trust or [], since, as_json))
    if (target is None) == (not all_):
        raise CliError("give a run id or --all (not both)", "orch verify RUN  |  orch verify --all")
    if since is not None and not all_:
        raise CliError("--since checks the whole store's ledger", "orch verify --all --since FILE")
    kept = read_checkpoint_file(since) if since is not None else None
    keys = trusted_keys(trust)
    with open_cli_store(store) as st:
        if all_:
            report = _verify_store(st, kept, keys)
        else:
            report = verify_run(st, st.resolve_run(target or ""))
    if as_json:
        emit_json(report.model_dump(mode="json") | {"ok": report.ok})
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


_PHASES = {
    "artifacts": "artifacts re-hashed",
    "ledger": "ledger and checkpoints",
    "runs": "runs verified",
}


def _verify_store(store: ArtifactStore, kept: bytes | None, keys: list[Verifier]) -> VerifyReport:
    with _progress_bar() as progress:
        return verify_store(store, since=kept, trusted=keys, progress=progress)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Any]:
    """A progress hook drawing a bar on stderr (None when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,  # gone once done: the report that follows is what stays
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield progress


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
