"""``orch export`` and ``orch prove``: a run's evidence as one file, checkable anywhere.

``orch export RUN -o run.orchpack`` writes the run's bundle (:mod:`traces._bundle`): its head,
events, artifacts, recorded pipeline sources, ledger entries with their inclusion proofs and a
signed checkpoint; ``--since OLD.checkpoint`` adds the consistency proof from a checkpoint an
auditor kept. ``orch prove RUN --step ID`` (or ``--decision STEP#N``) writes a disclosure
(:mod:`traces._disclose`) of that one step or decision, revealing nothing else of the run.
``orch verify FILE`` checks either kind with no store (:func:`verify_evidence`, called by
``orch verify``).

The checkpoint is the latest one stored with the ledger when it covers what the file needs;
otherwise one is signed with ``--key`` (or ``$ORCH_SIGNING_KEY``) and stored, and the command
says so: that is the only write either command makes to the store. This module must never
import or run anything a bundle or proof holds, and never create a store.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from orch._version import __version__
from orch.cli.common import (
    CliError,
    JsonOpt,
    SinceOpt,
    StoreOpt,
    emit_json,
    open_cli_store,
    out,
    print_error,
    read_checkpoint_file,
    trusted_keys,
    user_errors,
)
from orch.render._terminal import inert
from traces import (
    ArtifactStore,
    KeyRing,
    TraceError,
    VerifyReport,
    choose_checkpoint,
    disclose,
    export_bundle,
    ledger_of,
    open_checkpoint,
    parse_decision_ref,
    require_writable,
    seal_of,
    verify_bundle,
    verify_disclosure,
)
from traces.errors import EvidenceError

__all__ = ["export_command", "prove_command", "verify_evidence"]

KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Signing key for a new checkpoint, when no stored one covers the run: a key name "
        "in the keyring or a PEM file (default: $ORCH_SIGNING_KEY).",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="The file to write (default: named after the run)."),
]


def _checkpoint(st: ArtifactStore, covering: int, key: str | None) -> tuple[bytes, str | None]:
    """A signed checkpoint holding ledger entry ``covering``, and the name of the key that
    signed it now (None when a stored one was used)."""
    try:
        return choose_checkpoint(st, covering, ())[0], None
    except EvidenceError:
        spec = key or os.environ.get("ORCH_SIGNING_KEY")
        if not spec:
            raise
    signer = KeyRing().load_signer(spec)
    require_writable(st)  # the new checkpoint is stored with the ledger
    return choose_checkpoint(st, covering, [signer])[0], signer.name


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temp file renamed over it)."""
    folder = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".orch-", dir=folder)
    except OSError as exc:
        raise CliError(
            f"cannot write {inert(str(path))}: {exc.strerror}",
            "give an --output path in a folder you may write",
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"cannot write {inert(str(path))}: {exc.strerror}") from None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]


def _signed_note(st: ArtifactStore, note: bytes, signer: str | None) -> str:
    checkpoint = open_checkpoint(note, ())[0]
    if signer is None:
        return f"checkpoint of size {checkpoint.size} (stored with the ledger)"
    return (
        f"checkpoint of size {checkpoint.size}, signed now with key {signer} and stored in "
        f"{st.location}"
    )


@user_errors
def export_command(
    run_id: Annotated[str, typer.Argument(help="The run to export (id or unique prefix).")],
    output: OutputOpt = None,
    store: StoreOpt = None,
    key: KeyOpt = None,
    since: SinceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a run's evidence bundle (.orchpack): everything 'orch verify FILE' needs to
    check the run on a machine with no store, with a signed checkpoint of the store's ledger.
    --since adds the proof that the ledger only grew since a checkpoint an auditor kept."""
    kept = read_checkpoint_file(since) if since is not None else None
    with open_cli_store(store) as st:
        rid = st.resolve_run(run_id)
        entries = ledger_of(st).run_entries(rid) if st.supports_ledger else []
        if not entries:
            raise EvidenceError(
                f"run {rid} is not in the ledger of store {st.location} (it was made before the "
                "store kept one); fix: export a run recorded since"
            )
        note, signer = _checkpoint(st, entries[-1][0], key)
        data = export_bundle(st, rid, checkpoint=note, orch_version=__version__, since=kept)
        path = output or Path(f"{_safe(rid)}.orchpack")
        _write_file(path, data)
        said = _signed_note(st, note, signer)
    if as_json:
        emit_json(
            {
                "file": str(path),
                "run_id": rid,
                "bytes": len(data),
                "checkpoint_size": open_checkpoint(note, ())[0].size,
                "signed_now_by": signer,
                "since": str(since) if since is not None else None,
            }
        )
        return
    line = Text("✔ wrote", style="green")
    line.append(inert(f" {path}: bundle of run {rid} ({len(data)} bytes); {said}"))
    out.print(line, soft_wrap=True)


@user_errors
def prove_command(
    run_id: Annotated[str, typer.Argument(help="The run (id or unique prefix).")],
    step: Annotated[
        str | None, typer.Option("--step", help="Disclose this step: its record and artifacts.")
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="Disclose one decision, STEP#N (the N-th of the step)."),
    ] = None,
    output: OutputOpt = None,
    store: StoreOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a disclosure proof (.orchproof) of one step or one decision of a sealed run: it
    proves the step belongs to the run the store's ledger sealed, and reveals nothing else."""
    if (step is None) == (decision is None):
        raise CliError(
            "give --step ID or --decision STEP#N (one of them)",
            "orch prove RUN --step sum  |  orch prove RUN --decision vote#0",
        )
    step_id, index = (step, None) if step is not None else parse_decision_ref(decision or "")
    assert step_id is not None
    with open_cli_store(store) as st:
        rid = st.resolve_run(run_id)
        seal_index = seal_of(st, rid)[0]
        note, signer = _checkpoint(st, seal_index, key)
        data = disclose(st, rid, step_id, checkpoint=note, decision=index)
        what = f"step {step_id!r}" if index is None else f"decision #{index} of step {step_id!r}"
        suffix = "" if index is None else f"-decision{index}"
        path = output or Path(f"{_safe(rid)}-{_safe(step_id)}{suffix}.orchproof")
        _write_file(path, data)
        said = _signed_note(st, note, signer)
    if as_json:
        emit_json(
            {
                "file": str(path),
                "run_id": rid,
                "step": step_id,
                "decision": index,
                "bytes": len(data),
                "checkpoint_size": open_checkpoint(note, ())[0].size,
                "signed_now_by": signer,
            }
        )
        return
    line = Text("✔ wrote", style="green")
    line.append(inert(f" {path}: disclosure of {what} of run {rid}; {said}"))
    out.print(line, soft_wrap=True)


def verify_evidence(path: Path, trust: list[str], since: Path | None, as_json: bool) -> int:
    """Verify the bundle (``.orchpack``) or disclosure (``.orchproof``) at ``path`` with no
    store; print the report; return the exit code: 0 intact, 1 problems found, 2 a user
    mistake (an unreadable file, a file that is not one, a bad key). ``trust``: the keys
    whose signatures count (none: those of the keyring, and an untrusted signer is only a
    warning); ``since``: a checkpoint file the auditor kept."""
    try:
        kind, report = _verify_file(path, trust, since)
    except (CliError, TraceError) as exc:
        print_error(str(exc), getattr(exc, "hint", ""))
        return 2
    if as_json:
        emit_json(report.model_dump(mode="json") | {"ok": report.ok, "kind": kind})
    else:
        _print(report, kind, path)
    return 0 if report.ok else 1


def _verify_file(path: Path, trust: list[str], since: Path | None) -> tuple[str, VerifyReport]:
    if path.suffix not in (".orchpack", ".orchproof"):
        raise CliError(
            f"{path} is neither a .orchpack bundle nor a .orchproof disclosure",
            "give a file 'orch export' or 'orch prove' wrote",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(
            f"cannot read {path}: {exc.strerror}",
            "give the file 'orch export' or 'orch prove' wrote",
        ) from None
    kept = read_checkpoint_file(since) if since is not None else None
    keys = trusted_keys(trust or None)
    if path.suffix == ".orchpack":
        return "bundle", verify_bundle(data, keys, kept, require_trusted=bool(trust))
    return "disclosure", verify_disclosure(data, keys, kept, require_trusted=bool(trust))


def _print(report: VerifyReport, kind: str, path: Path) -> None:
    # Findings quote what the file holds: attacker-written text, printed inert.
    label = inert(f"{kind} {path}" + (f" (run {report.run_id})" if report.run_id else ""))
    if report.ok:
        checked = inert(", ".join(f"{n} {k}" for k, n in report.checked.items()))
        line = Text("✔ intact", style="green")
        line.append(f" {label}: {checked} verified")
        out.print(line, soft_wrap=True)
        if report.root_hash:
            state = "" if report.complete else " (the run did not finish)"
            out.print(Text(f"  root hash {inert(report.root_hash)}{state}"))
    else:
        line = Text("✘ TAMPERED", style="red")
        line.append(f" {label}: {len(report.problems)} problem(s)")
        out.print(line, soft_wrap=True)
        for p in report.problems:
            line = Text("  - ")
            line.append(inert(p.subject), style="bold")
            line.append(f": {inert(p.detail)} ")
            line.append(f"({inert(p.kind)})", style="dim")
            out.print(line, highlight=False, soft_wrap=True)
    for w in report.warnings:
        line = Text("  ")
        line.append("warning:", style="yellow")
        line.append(f" {inert(w)}")
        out.print(line, highlight=False, soft_wrap=True)
