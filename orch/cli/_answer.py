"""``orch answer``: answer the question a waiting run asked, and resume it.

The pipeline is the file the run was made from (checked as ``orch replay`` checks it: every
recorded source file must be on disk as recorded), or ``--pipeline``. A refused answer (its
schema, its principal, no such question) is one line and exit 2, and the run still waits.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orch._answer import aanswer
from orch._ask import check_answer, parse_answer_pairs
from orch._loader import load_pipeline
from orch._runtime import new_run_id
from orch.cli._replay import recorded_target
from orch.cli._run import exit_for, origin_of, run_and_show, signing_key
from orch.cli.common import (
    JsonOpt,
    ModelsOpt,
    StoreOpt,
    command_services,
    open_cli_store,
    user_errors,
)

__all__ = ["answer_command"]


@user_errors
def answer_command(
    run_id: Annotated[str, typer.Argument(help="The waiting run (id or unique prefix).")],
    values: Annotated[
        list[str] | None,
        typer.Argument(
            help="The answer's fields, KEY=VALUE: text for a field the question types as "
            "text, else JSON when it parses (approve=true, count=3)."
        ),
    ] = None,
    by: Annotated[str, typer.Option("--as", help="Who answers (recorded with the answer).")] = "",
    question: Annotated[
        str | None,
        typer.Option(
            "--question", help="The question's id (STEP#N) when the run waits on several."
        ),
    ] = None,
    use_default: Annotated[
        bool,
        typer.Option(
            "--default",
            help="Apply the question's default: only once its deadline passed (recorded as "
            "given by orch:deadline).",
        ),
    ] = False,
    pipeline_target: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            help="FILE.py[:NAME] to resume with; default: the file the run was made from.",
        ),
    ] = None,
    models: ModelsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a waiting run's question as --as NAME, and resume the run with it.

    The answer is checked against the question's schema and who may answer before anything is
    written; the resumed run serves every effect made before the pause from the record. Exit
    0 when the run finished, 3 when it waits again (on a later question), 1 when it failed.
    With $ORCH_SIGNING_KEY set, a signed checkpoint of the ledger (which commits to the
    answer) is stored after the run.
    """
    signer = signing_key()
    with open_cli_store(store, writable=True) as st:
        rid = st.resolve_run(run_id)
        given = parse_answer_pairs(st, rid, values or [], question)
        # Checked before the pipeline is imported: a wrong answer costs nothing.
        check_answer(
            st,
            rid,
            given,
            by=by or "orch:deadline" * use_default,
            question=question,
            use_default=use_default,
        )
        target, _ = recorded_target(st, rid, pipeline_target, "answer")
        pipeline = load_pipeline(target)
        services = command_services(target, models)
        new_id = new_run_id()

        async def work(control: Any) -> Any:
            return await aanswer(
                pipeline,
                rid,
                given,
                by=by,
                question=question,
                use_default=use_default,
                store=st,
                services=services,
                control=control,
                run_id=new_id,
                origin=origin_of(st, target),
            )

        where = "" if store is None else f" --store {store}"
        result, stopped_by = run_and_show(
            st, work, services, new_id, target, where, signer, as_json
        )
    exit_for(result, stopped_by, f"orch run {target} --resume {result.run_id}{where}", where)
