"""``orch run``: run a pipeline from a Python file and record it, or resume a run."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.text import Text

from orch._interrupt import EXIT_CODES, under_signals
from orch._loader import load_pipeline, split_target
from orch._runtime import arun, new_run_id, validate_inputs
from orch._sources import find_sources, record_sources
from orch.cli._inputs import parse_inputs
from orch.cli.common import (
    CliError,
    JsonOpt,
    ModelsOpt,
    StoreOpt,
    check_seed,
    command_services,
    emit_json,
    err,
    open_cli_store,
    out,
    user_errors,
    with_services,
)
from orch.render._terminal import (
    inert,
    run_summary,
)
from traces import ArtifactStore, KeyRing, ledger_of, load_run_view, to_canonical

__all__ = [
    "EXIT_WAITING",
    "exit_for",
    "origin_of",
    "result_json",
    "run_and_show",
    "run_command",
    "signal_notes",
    "signed_checkpoint",
    "signing_key",
]

EXIT_WAITING = 3
"""Exit code of a run that stopped to wait for an answer (``orch answer`` resumes it)."""


def origin_of(st: ArtifactStore, target: str) -> dict[str, Any]:
    """Where the pipeline came from, for the event log (``orch replay`` reads it back):
    FILE:NAME with an absolute path, and the code itself, so that a replay imports only what
    ran."""
    path, name = split_target(target)
    return {
        "pipeline": f"{Path(path).resolve()}:{name}",
        "sources": record_sources(st, find_sources(path)),
    }


@user_errors
def run_command(
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
    seed: Annotated[int, typer.Option(help="Run seed, 0 to 2**63-1: each step's RNG uses it.")] = 0,
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
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            help="Run the next turn of this conversation thread: a pipeline with a 'state' "
            "input gets the previous turn's 'state' output (orch thread show T lists turns).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline defined in a Python file and record it.

    Ctrl-C (or SIGTERM) stops the run cleanly: unfinished steps are recorded as cancelled
    and the command prints how to resume it; a second Ctrl-C exits at once. With
    $ORCH_SIGNING_KEY set (a key name or a PEM file), a signed checkpoint of the store's
    ledger is stored after the run.
    """
    check_seed(seed)
    pipeline = load_pipeline(target)
    _check_resume_options(target, resume, wait, bool(input) or bool(seed), thread)
    inputs = parse_inputs(input or [], dict(pipeline.inputs))
    if resume is None:
        validate_inputs(pipeline, inputs)  # a wrong input is reported before a store is made
    services = command_services(target, models)
    signer = signing_key()
    run_id = new_run_id()
    # A run to resume must already be in the store: only a new run makes a store.
    with open_cli_store(store, create=resume is None, writable=True) as st:
        where = "" if store is None else f" --store {store}"

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
                thread=thread,
                origin=origin_of(st, target),
                services=services,
                control=control,
            )

        result, stopped_by = run_and_show(
            st, work, services, run_id, target, where, signer, as_json
        )
    exit_for(result, stopped_by, f"orch run {target} --resume {result.run_id}{where}", where)


def run_and_show(
    st: ArtifactStore,
    work: Callable[[Any], Awaitable[Any]],
    services: Any,
    run_id: str,
    target: str,
    where: str,
    signer: Any,
    as_json: bool,
) -> tuple[Any, int | None]:
    """Await ``work(control)`` (a run with id ``run_id``) with Ctrl-C and SIGTERM stopping it
    cleanly, store a signed checkpoint when there is a ``signer``, and print the result (JSON
    or the run's summary); return the result and the signal that stopped it, if any."""
    first, again = signal_notes(run_id, f"orch run {target} --resume {run_id}{where}")
    result, stopped_by = anyio.run(
        with_services, services, partial(under_signals, work, first=first, again=again)
    )
    checkpoint = signed_checkpoint(st, signer)
    if as_json:
        emit_json(result_json(st, result, checkpoint))
    else:
        out.print(run_summary(load_run_view(st, result.run_id)))
    return result, stopped_by


def _check_resume_options(
    target: str, resume: str | None, wait: bool, given: bool, thread: str | None
) -> None:
    if resume is not None and given:
        raise CliError(
            "--resume uses the recorded inputs and seed of the run it continues",
            f"drop --input and --seed: orch run {target} --resume {resume}",
        )
    if thread is not None and resume is not None:
        raise CliError(
            "--resume continues a run, which keeps its own thread and turn",
            f"drop --thread: orch run {target} --resume {resume}",
        )
    if wait and resume is None:
        raise CliError("--wait is for --resume", f"orch run {target} --resume RUN --wait")


def signal_notes(
    run_id: str, again_hint: str
) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """What the first and the second Ctrl-C (or SIGTERM) print."""

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

    return first, again


def signed_checkpoint(st: ArtifactStore, signer: Any) -> int | None:
    """With $ORCH_SIGNING_KEY, a signed checkpoint of the ledger after the run: its size."""
    if signer is None:
        return None
    ledger = ledger_of(st)
    if not ledger.supported:
        return None
    ledger.checkpoint([signer])
    return ledger.tree().size


def result_json(st: ArtifactStore, result: Any, checkpoint: int | None) -> dict[str, Any]:
    return {
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
        "questions": [q.model_dump(mode="json", by_alias=True) for q in result.questions],
    }


def exit_for(result: Any, stopped_by: int | None, resume_hint: str, where: str = "") -> None:
    """Exit 0 for a finished run; for a cancelled one, say how to resume it and exit with
    the signal's code (130 for Ctrl-C, 143 for SIGTERM); 1 for a failed one; 3
    (:data:`EXIT_WAITING`) for one that waits for an answer, saying how to give it."""
    if result.status == "waiting":
        for q in result.questions:
            fields = " ".join(f"{name}=..." for name in q.schema_.get("properties", {}))
            who = f" (from: {', '.join(q.principals)})" if q.principals else ""
            pick = f" --question {q.id}" if len(result.questions) > 1 else ""
            err.print(
                Text(
                    inert(
                        f"run {result.run_id} waits for an answer to {q.id}: {q.question}"
                        f"{who}; answer with: orch answer {result.run_id} {fields} --as NAME"
                        f"{pick}{where}"
                    )
                ),
                soft_wrap=True,  # a command to copy: never folded
            )
        raise typer.Exit(EXIT_WAITING)
    if result.status == "cancelled":
        err.print(
            Text(
                inert(
                    f"run {result.run_id} was cancelled and recorded; resume it with: {resume_hint}"
                )
            ),
            soft_wrap=True,  # a command to copy: never folded
        )
        raise typer.Exit(EXIT_CODES.get(signal.Signals(stopped_by), 1) if stopped_by else 1)
    if not result.ok:
        raise typer.Exit(1)


def signing_key() -> Any:
    """The signer $ORCH_SIGNING_KEY names (a key of the keyring, or a PEM file), or None."""
    spec = os.environ.get("ORCH_SIGNING_KEY")
    if not spec:
        return None
    return KeyRing().load_signer(spec)
