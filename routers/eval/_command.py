"""``orch eval``: run routers over a recorded dataset through the engine and report.

``orch eval DATASET --pipeline FILE.py[:NAME]`` runs the pipeline once per task of the
dataset's split (every task a recorded run in the store, served by the recorded responses),
shows a progress bar, and prints accuracy, cost, the share of tasks per mode and the
agreement-but-wrong rate, with the reference points (single models, the zero router's AIQ,
the oracle). ``--pipeline`` may be given several times (a list of routers), and ``--sweep
NAME=V1,V2`` (repeatable) calls the pipeline function with every combination of the values:
one configuration each, and with several configurations the AIQ of their points against the
zero router's over the same cost range. ``--save FILE`` writes the evaluation file
(``orch.eval-report/1``, what ``orch report`` renders). Every task's run has a fixed id named
by the evaluation, so the same command, run again after an interruption, finds the finished
runs in the store and resumes the interrupted ones; ``--fresh`` runs every task again.
``--executor local`` or ``--executor dask --scheduler tcp://HOST:PORT`` places the runs with
an executor (on a cluster's workers, into a store they all reach). ``--json`` prints it all as
one object, with each task's run id.

Only parses the options, calls the library (:mod:`routers.eval._study`, which evaluates and
assembles the evaluation file) and renders; recorded and file-given text is printed inert.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orch.batch import Executor, make_executor
from orch.cli.common import (
    CliError,
    JsonOpt,
    StoreOpt,
    check_seed,
    emit_json,
    err,
    open_cli_store,
    out,
    user_errors,
)
from orch.render import inert
from routers.eval._curves import zero_router_aiq
from routers.eval._evalfile import EvalConfig, EvalFile, References
from routers.eval._evalfile import save as save_file
from routers.eval._harness import EvalReport
from routers.eval._study import Configuration, Study, configurations

__all__ = ["eval_command"]

DatasetArg = Annotated[
    str, typer.Argument(help="A dataset name (e.g. routerarena) or an orch.eval-dataset file.")
]
PipelinesOpt = Annotated[
    list[str],
    typer.Option(
        "--pipeline",
        help="FILE.py[:NAME]: a router to evaluate (input 'question'); repeat for several.",
    ),
]
SweepOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="NAME=V1,V2,...: call the pipeline function with each value (JSON or text); "
        "repeat to sweep a grid."
    ),
]
SplitOpt = Annotated[str, typer.Option(help="train, val, test or all.")]
LimitOpt = Annotated[int | None, typer.Option(help="Only the first N tasks.")]
ParallelOpt = Annotated[int, typer.Option(help="Runs at once.")]
SeedOpt = Annotated[int, typer.Option(help="Evaluation seed (each task's seed derives from it).")]
OutputOpt = Annotated[
    str | None, typer.Option(help="The pipeline output to grade (default: its only one).")
]
DataOpt = Annotated[
    str | None, typer.Option(help="Folder of the recorded data (default: $ORCH_EVAL_DATA).")
]
SaveOpt = Annotated[str | None, typer.Option(help="Write the evaluation file here.")]
FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh", help="Run every task again, under a new batch id, instead of resuming."
    ),
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        help="Place the runs with an executor: local (this process) or dask (with "
        "--scheduler). Default: in this process."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(help="The Dask scheduler's address, tcp://HOST:PORT (with --executor dask)."),
]
ChunkOpt = Annotated[
    int | None, typer.Option(help="Tasks per Dask task (default: two per worker slot).")
]


@user_errors
def eval_command(
    dataset: DatasetArg,
    pipeline_targets: PipelinesOpt,
    sweep: SweepOpt = None,
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    parallel: ParallelOpt = 4,
    seed: SeedOpt = 0,
    output: OutputOpt = None,
    data: DataOpt = None,
    store: StoreOpt = None,
    save: SaveOpt = None,
    fresh: FreshOpt = False,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    chunk_size: ChunkOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate routers on recorded data; every task is a recorded run."""
    check_seed(seed)
    runner = make_executor(executor, scheduler, parallel, chunk_size)
    try:
        configs = configurations(pipeline_targets, sweep or [])
        study = Study(
            dataset, configs, split=split, limit=limit, seed=seed, output=output, data=data
        )
        scope = f"{study.tasks().name}/{split}"
    except ValueError as exc:  # a DatasetError too
        raise CliError(str(exc)) from None
    with open_cli_store(store, create=True, writable=True) as st:
        # An executor's workers open the store themselves, from its location.
        where = st if runner is None else store
        run = partial(_measure, study, where, runner, parallel, fresh, as_json, scope)
        reports = [run(config) for config in study.configurations]
        location = st.location
    ev = study.file(reports, location)
    if save:
        save_file(ev, save)
    if as_json:
        _emit_json(ev)
        return
    _print_tables(ev, reports)
    first = reports[0].results[0].run_id
    out.print(Text(inert(f"runs recorded in {location}; first: orch show {first}")))
    if save:
        out.print(Text(inert(f"evaluation file: {save}; render it with: orch report {save}")))


def _measure(
    study: Study,
    store: Any,
    runner: Executor | None,
    parallel: int,
    fresh: bool,
    quiet: bool,
    scope: str,
    config: Configuration,
) -> EvalReport:
    """One configuration evaluated, with a progress bar on stderr."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, disable=quiet, transient=True) as bar:
        # The description is markup to rich: names from files are escaped for it.
        job = bar.add_task(escape(inert(f"{config.label} on {scope}")), total=None)

        def advance(done: int, total: int) -> None:
            bar.update(job, completed=done, total=total)

        measure = partial(
            study.measure, config, store, executor=runner, parallel=parallel, fresh=fresh
        )
        try:
            return anyio.run(partial(measure, progress=advance))
        except ValueError as exc:  # a DatasetError too
            raise CliError(f"{config.label}: {exc}") from None


def _summary_json(config: EvalConfig) -> dict[str, Any]:
    return {
        "label": config.label,
        "params": config.params,
        **config.summary,
        "runs": [
            {
                "task": r.task,
                "run_id": r.run_id,
                "score": r.score,
                "cost_usd": r.cost_usd,
                "error": r.error,
            }
            for r in config.runs
        ],
    }


def _reference_json(refs: References) -> dict[str, Any]:
    reference: dict[str, Any] = {
        "single_models": [
            {"model": p.label, "accuracy": p.quality, "cost_per_task_usd": p.cost}
            for p in refs.single_models
        ]
    }
    if refs.zero_router_aiq is not None and refs.oracle is not None:
        reference["zero_router_aiq"] = refs.zero_router_aiq
        reference["oracle"] = {
            "accuracy": refs.oracle.quality,
            "cost_per_task_usd": refs.oracle.cost,
        }
    if refs.note:
        reference["note"] = refs.note
    return reference


def _emit_json(ev: EvalFile) -> None:
    reference = _reference_json(ev.references)
    configs = [_summary_json(c) for c in ev.configs]
    if len(configs) == 1:  # one router: its summary at the top level, as before sweeps
        emit_json(configs[0] | {"reference": reference})
        return
    emit_json(
        {
            "dataset": ev.dataset,
            "split": ev.split,
            "tasks": ev.tasks,
            "configs": configs,
            "reference": reference,
            "curves": [c.model_dump(mode="json") for c in ev.curves],
        }
    )


def _cell(text: object) -> Text:
    """A table cell from a name, a mode or a notice: recorded or read from files, so inert
    text, never markup."""
    return Text(inert(str(text)))


def _print_tables(ev: EvalFile, reports: list[EvalReport]) -> None:
    if len(reports) == 1:
        out.print(_one_table(ev, ev.configs[0].label, reports[0]))
        return
    title = f"{len(reports)} configurations on {ev.dataset} ({ev.split}, {ev.tasks} tasks)"
    table = Table(title=_cell(title))
    for col in ("configuration", "accuracy", "$ a task", "modes", "agreement-but-wrong", "failed"):
        table.add_column(col)
    for config, report in zip(ev.configs, reports, strict=True):
        s = report.summary()
        abw = s["agreement_but_wrong"]
        table.add_row(
            _cell(config.label),
            f"{s['accuracy']:.4f}",
            f"{s['cost_per_task_usd']:.8f}",
            _cell(", ".join(f"{k} {v:.0%}" for k, v in s["modes"].items()) or "-"),
            "-" if abw is None else f"{abw:.1%}",
            f"[red]{report.failed}[/]" if report.failed else "0",
        )
    out.print(table)
    refs = ev.references
    if refs.zero_router_aiq is not None and refs.oracle is not None:
        out.print(
            f"zero router AIQ {refs.zero_router_aiq:.4f}; oracle {refs.oracle.quality:.4f} at "
            f"${refs.oracle.cost:.8f} a task"
        )
    for c in ev.curves:
        if c.cost_range is None or c.aiq is None:
            continue
        lo, hi = c.cost_range
        zero = zero_router_aiq(refs, c.cost_range)
        out.print(
            f"AIQ of the configurations' hull over [${lo:.8f}, ${hi:.8f}]: {c.aiq:.4f}; "
            f"the zero router's there: {zero:.4f} ({c.aiq - zero:+.4f})"
        )


def _one_table(ev: EvalFile, label: str, report: EvalReport) -> Table:
    s = report.summary()
    table = Table(title=_cell(f"{label} on {ev.dataset} ({ev.split}, {report.tasks} tasks)"))
    for col in ("measure", "value"):
        table.add_column(col)
    table.add_row("accuracy", f"{s['accuracy']:.4f}")
    table.add_row("cost", f"${s['cost_usd']:.6f} (${s['cost_per_task_usd']:.8f} a task)")
    if s["modes"]:
        table.add_row("modes", _cell(", ".join(f"{k} {v:.1%}" for k, v in s["modes"].items())))
    if s["agreement_but_wrong"] is not None:
        table.add_row("agreement-but-wrong", f"{s['agreement_but_wrong']:.1%}")
    if report.failed:
        table.add_row("failed runs", f"[red]{report.failed}[/]")
    if report.batch_id is not None:
        table.add_row("batch", _cell(report.batch_id))
    if report.resumed:
        table.add_row("already finished in the store", str(report.resumed))
    if report.retried:
        table.add_row("resumed after an interruption", str(report.retried))
    for line in report.notices[:5]:
        table.add_row("notice", _cell(line))
    if len(report.notices) > 5:
        table.add_row("notices", f"{len(report.notices) - 5} more (see the workers' logs)")
    refs = ev.references
    if refs.zero_router_aiq is not None and refs.oracle is not None:
        table.add_row("zero router AIQ", f"{refs.zero_router_aiq:.4f}")
        table.add_row("oracle", f"{refs.oracle.quality:.4f} at ${refs.oracle.cost:.8f} a task")
    return table
