"""``orch eval``: run a router over a recorded dataset through the engine and report.

``orch eval DATASET --pipeline FILE.py[:NAME]`` runs the pipeline once per task of the
dataset's split (every task a recorded run in the store, served by the recorded responses),
shows a progress bar, and prints accuracy, cost, the share of tasks per mode and the
agreement-but-wrong rate, with the reference points (single models, the zero router's AIQ,
the oracle). ``--json`` prints it all as one object, with each task's run id. Part of the
CLI, so it may wire ``routers`` into the engine; it imports them only when it runs.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from traces.open import open_store

__all__ = ["eval_command"]


def eval_command(
    dataset: Annotated[
        str, typer.Argument(help="A dataset name (e.g. routerarena) or an orch.eval-dataset file.")
    ],
    pipeline_target: Annotated[
        str,
        typer.Option(
            "--pipeline", help="FILE.py[:NAME]: the router to evaluate (input 'question')."
        ),
    ],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    parallel: Annotated[int, typer.Option(help="Runs at once.")] = 4,
    seed: Annotated[
        int, typer.Option(help="Evaluation seed (each task's seed derives from it).")
    ] = 0,
    output: Annotated[
        str | None, typer.Option(help="The pipeline output to grade (default: its only one).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Folder of the recorded data (default: $ORCH_EVAL_DATA).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Store location (default: $ORCH_STORE or .orch/).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate a router on recorded data; every task is a recorded run."""
    from . import cli  # shared console, error handling and JSON output (imported late)

    @cli.user_errors
    def run() -> None:
        from routers.eval import DatasetError, aiq, load_dataset
        from routers.eval.harness import evaluate
        from routers.eval.reference import oracle, single_models, zero_router

        from .loader import load_pipeline

        if split not in ("train", "val", "test", "all"):
            raise cli.CliError(f"--split {split!r} is not train, val, test or all")
        try:
            ds = load_dataset(dataset, data)
        except DatasetError as exc:
            raise cli.CliError(str(exc)) from None
        pipeline = load_pipeline(pipeline_target)
        scope = ds if split == "all" else ds.split(split)  # type: ignore[arg-type]
        total = min(len(scope), limit) if limit is not None else len(scope)
        if total == 0:
            raise cli.CliError(f"dataset {ds.name!r} has no {split} tasks")
        with (
            open_store(store) as st,
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=cli.err,
                disable=as_json,
                transient=True,
            ) as bar,
        ):
            job = bar.add_task(f"{pipeline.name} on {ds.name}/{split}", total=total)
            try:
                report = anyio.run(
                    partial(
                        evaluate,
                        pipeline,
                        ds,
                        st,
                        output=output,
                        split=split,
                        limit=limit,
                        parallel=parallel,
                        seed=seed,
                        progress=lambda done, _n: bar.update(job, completed=done),
                    )
                )
            except ValueError as exc:
                raise cli.CliError(str(exc)) from None
        graded = scope.select(limit=limit) if limit is not None else scope
        scores = single_models(graded)
        refs: dict[str, Any] = {
            "single_models": [
                {"model": m.model, "accuracy": m.quality, "cost_per_task_usd": m.cost}
                for m in scores
            ]
        }
        try:
            hull = zero_router(graded, scores)
            singles = [m.cost for m in scores if m.cost is not None]
            refs["zero_router_aiq"] = aiq(hull, (hull[0].cost, max(singles)))
            best = oracle(graded)
            refs["oracle"] = {"accuracy": best.quality, "cost_per_task_usd": best.cost}
        except ValueError as exc:
            refs["note"] = str(exc)
        if as_json:
            cli.emit_json(
                report.summary()
                | {"reference": refs}
                | {
                    "runs": [
                        {
                            "task": r.task,
                            "run_id": r.run_id,
                            "score": r.score,
                            "cost_usd": r.cost_usd,
                            "error": r.error,
                        }
                        for r in report.results
                    ]
                }
            )
            return
        s = report.summary()
        table = Table(title=f"{report.router} on {ds.name} ({split}, {report.tasks} tasks)")
        for col in ("measure", "value"):
            table.add_column(col)
        table.add_row("accuracy", f"{s['accuracy']:.4f}")
        table.add_row("cost", f"${s['cost_usd']:.6f} (${s['cost_per_task_usd']:.8f} a task)")
        if s["modes"]:
            table.add_row("modes", ", ".join(f"{k} {v:.1%}" for k, v in s["modes"].items()))
        if s["agreement_but_wrong"] is not None:
            table.add_row("agreement-but-wrong", f"{s['agreement_but_wrong']:.1%}")
        if report.failed:
            table.add_row("failed runs", f"[red]{report.failed}[/]")
        if "zero_router_aiq" in refs:
            table.add_row("zero router AIQ", f"{refs['zero_router_aiq']:.4f}")
            o = refs["oracle"]
            table.add_row("oracle", f"{o['accuracy']:.4f} at ${o['cost_per_task_usd']:.8f} a task")
        cli.out.print(table)
        cli.out.print(
            f"runs recorded in {st.location}; first: orch show {report.results[0].run_id}"
        )

    run()
