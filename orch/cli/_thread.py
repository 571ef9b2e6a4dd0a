"""``orch thread show|verify|replay``: the turns of a conversation thread, checked and replayed.

A thread is a chain of runs, one per turn (:mod:`orch._thread`). ``show`` lists its turns,
``verify`` verifies every turn's run and the links between turns, ``replay`` replays the turns
one after another, offline, as ``orch replay`` replays a run, and stops at the first that
diverges. Each command only reads the store (``replay`` records its replays, as ``orch
replay`` does, unless ``--no-record``); none creates one.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
import typer
from rich.table import Table
from rich.text import Text

from orch._lineage import process_gone
from orch._loader import load_pipeline
from orch._pipeline import Pipeline
from orch._replay import areplay, replay_store
from orch._thread import ThreadTurn, thread_turns, verify_thread
from orch.cli._replay import _print_replay, recorded_target
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
    user_errors,
    with_services,
)
from orch.render._terminal import inert, status_text
from traces import ArtifactStore, load_run_head

__all__ = ["thread_app"]

thread_app = typer.Typer(
    name="thread",
    help="Conversation threads (arun(..., thread=T)): list, verify and replay their turns.",
    no_args_is_help=True,
)

ThreadArg = Annotated[str, typer.Argument(help="The thread id.")]


def _unknown(thread: str, st: ArtifactStore) -> CliError:
    return CliError(
        f"no thread {thread!r} in store {st.location}",
        "check the thread id, and --store / ORCH_STORE",
    )


def _turns(st: ArtifactStore, thread: str) -> list[ThreadTurn]:
    turns = thread_turns(st, thread)
    if not turns:
        raise _unknown(thread, st)
    return turns


@thread_app.command("show")
@user_errors
def show_command(thread: ThreadArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List a thread's turns: run ids, statuses and root hashes, the first turn first."""
    with open_cli_store(store) as st:
        turns = _turns(st, thread)
        heads = {t.run_id: load_run_head(st, t.run_id) for t in turns}
        gone = {r for r, h in heads.items() if process_gone(st, h)}
    if as_json:
        emit_json(
            {
                "thread": thread,
                "turns": [
                    {
                        "turn": t.turn,
                        "run_id": t.run_id,
                        "status": t.status,
                        "root_hash": t.root_hash,
                        "previous": t.previous,
                        "process_gone": t.run_id in gone,
                    }
                    for t in turns
                ],
            }
        )
        return
    table = Table(title=Text(inert(f"thread {thread}")))
    for col in ("turn", "run id", "status", "root hash"):
        table.add_column(col)
    # A root hash is what an auditor copies: folded onto the next line, never cut.
    table.columns[3].overflow = "fold"
    for t in turns:
        table.add_row(
            str(t.turn),
            Text(inert(t.run_id)),
            status_text(heads[t.run_id], gone=t.run_id in gone),
            Text(inert(t.root_hash or "-")),
        )
    out.print(table)


@thread_app.command("verify")
@user_errors
def verify_command(thread: ThreadArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Verify every turn's run (as 'orch verify RUN' does), that the thread's index agrees
    with the runs' heads, and that each turn's input 'state' is the previous turn's output
    'state'. Exit 1 when anything is wrong."""
    with open_cli_store(store) as st:
        report = verify_thread(st, thread)
        if not report.turns and not report.problems:
            raise _unknown(thread, st)
    if as_json:
        emit_json(report.to_json())
    elif report.ok:
        state = "complete" if report.complete else f"its last turn is {report.turns[-1].status}"
        line = Text("✔ intact", style="green")
        line.append(
            inert(
                f" thread {thread}: {len(report.turns)} turn(s), {state}; "
                f"{report.runs_checked} run(s) and {report.links_checked} link(s) verified"
            )
        )
        out.print(line)
    else:
        line = Text("✘ TAMPERED", style="red")
        line.append(inert(f" thread {thread}: {len(report.problems)} problem(s)"))
        out.print(line)
        for problem in report.problems:
            out.print(Text("  - " + inert(problem)), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@thread_app.command("replay")
@user_errors
def replay_command(
    thread: ThreadArg,
    pipeline_target: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            help="FILE.py[:NAME] to replay every turn with; default: the file each turn's run "
            "was made from.",
        ),
    ] = None,
    models: ModelsOpt = None,
    store: StoreOpt = None,
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Write nothing to the store (as orch replay)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replay a thread turn by turn with every effect served from its record (no network),
    as 'orch replay RUN' replays each run, and stop at the first turn that diverges.

    Exit 0 when every finished turn replayed to its root hash (a last turn that did not
    finish is not replayed, and said so); 1 with the first divergence otherwise.
    """
    reports: list[tuple[ThreadTurn, Any]] = []
    with open_cli_store(store) as base:
        turns = _turns(base, thread)
        st = replay_store(base, record=not no_record)
        if st is not base:
            why = "--no-record" if no_record else f"store {base.location} is read-only"
            note(f"note: these replays are not recorded ({why}); they write to memory only")
        loaded: dict[str, Pipeline] = {}
        for t in turns:
            if t.root_hash is None:
                note(
                    f"turn {t.turn} (run {t.run_id}) did not finish ({t.status}): not "
                    f"replayed; resume it with: orch run FILE --resume {t.run_id}"
                )
                break
            target, _ = recorded_target(base, t.run_id, pipeline_target)
            pipeline = loaded.get(target) or loaded.setdefault(target, load_pipeline(target))
            services = command_services(target, models)
            report = anyio.run(
                with_services, services, partial(areplay, pipeline, t.run_id, st, services=services)
            )
            reports.append((t, report))
            if not as_json:
                _print_turn(t, report, pipeline)
            if not report.clean:
                break
    clean = all(r.clean for _, r in reports)
    if as_json:
        emit_json(
            {
                "thread": thread,
                "clean": clean,
                "turns": len(turns),
                "replayed": [r.to_json() | {"turn": t.turn} for t, r in reports],
            }
        )
    elif clean:
        line = Text("✔ clean replay", style="green")
        line.append(inert(f" of thread {thread}: {len(reports)} of {len(turns)} turn(s)"))
        out.print(line)
    if not clean:
        raise typer.Exit(1)


def _print_turn(turn: ThreadTurn, report: Any, pipeline: Pipeline) -> None:
    if report.clean:
        line = Text(f"  turn {turn.turn} ")
        line.append("✔", style="green")
        line.append(inert(f" run {turn.run_id}: same root hash {report.expected_root}"))
        out.print(line, highlight=False)
        return
    out.print(Text(inert(f"  turn {turn.turn} (run {turn.run_id}):")), highlight=False)
    _print_replay(report, turn.run_id, pipeline)
