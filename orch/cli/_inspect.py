"""``orch runs`` and ``orch show``: list the runs of a store, and show one run."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.text import Text

from orch._ask import Question, pending_questions
from orch._lineage import process_gone
from orch._loader import load_pipeline
from orch.cli.common import (
    CliError,
    JsonOpt,
    StoreOpt,
    emit_json,
    open_cli_store,
    out,
    user_errors,
    write_text,
)
from orch.render._mermaid import pipeline_to_mermaid
from orch.render._terminal import (
    inert,
    run_summary,
    runs_table,
    step_tree,
)
from traces import load_run_head, load_run_view

__all__ = ["runs_command", "show_command"]


@user_errors
def runs_command(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="Show the newest N runs.")] = 50,
    waiting: Annotated[
        bool,
        typer.Option(
            "--waiting",
            help="Only runs that wait for an answer (orch answer), with their questions.",
        ),
    ] = False,
) -> None:
    """List the runs in the store, newest last, with their status: a run still marked
    running whose process is gone (it waits for a resume) says so."""
    with open_cli_store(store) as st:
        heads = [load_run_head(st, r) for r in st.run_ids()]
        if waiting:
            heads = [h for h in heads if h.status == "waiting" and not h.resumed_by]
        heads.sort(key=lambda h: (h.started_at, h.run_id))
        heads = heads[-limit:]
        gone = {h.run_id for h in heads if process_gone(st, h)}
        questions = {h.run_id: pending_questions(st, h.run_id) for h in heads} if waiting else {}
    if as_json:
        emit_json(
            [
                h.model_dump(mode="json")
                | {"process_gone": h.run_id in gone}
                | (
                    {"questions": [_question_json(q) for q in questions[h.run_id]]}
                    if waiting
                    else {}
                )
                for h in heads
            ]
        )
    elif not heads:
        what = "no runs waiting for an answer" if waiting else "no runs"
        out.print(Text(f"{what} in {inert(st.location)}"))
    else:
        out.print(runs_table(heads, gone))
        for rid, asked in questions.items():
            for q in asked:
                due = "" if q.due_at is None else f", deadline {_when(q.due_at)}"
                who = f" from {', '.join(q.principals)}" if q.principals else ""
                out.print(
                    Text(inert(f"  {rid} {q.id}: {q.question} (answer{who}{due})")),
                    highlight=False,
                )


def _question_json(q: Question) -> dict[str, Any]:
    return q.model_dump(mode="json", by_alias=True) | {"asked_at": q.asked_at, "due_at": q.due_at}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@user_errors
def show_command(
    target: Annotated[
        str, typer.Argument(help="A run id (or unique prefix), or FILE.py[:NAME] with --graph.")
    ],
    graph: Annotated[bool, typer.Option("--graph", help="Print the pipeline as Mermaid.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a run: summary and a tree of steps with decisions and timings.

    (A router state version, sha256:..., is shown by 'orch state VERSION'.)
    """
    if graph and (target.endswith(".py") or ".py:" in target):
        write_text(pipeline_to_mermaid(_inert_tree(load_pipeline(target).spec)))
        return
    if target.startswith("sha256:"):
        raise CliError(
            f"{target!r} is not a run id: it looks like a content key (a router state version?)",
            f"show a router state's history with: orch state {target}",
        )
    with open_cli_store(store) as st:
        view = load_run_view(st, st.resolve_run(target))
        if graph:
            # Recorded names become Mermaid labels: one line each, no control characters.
            spec = _inert_tree(view.spec)
            write_text(pipeline_to_mermaid(spec, _inert_tree(view.statuses())))
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
            from orch._lineage import process_gone

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
