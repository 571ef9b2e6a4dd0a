"""``orch eval``: run routers over a recorded dataset through the engine and report.

``orch eval DATASET --pipeline FILE.py[:NAME]`` runs the pipeline once per task of the
dataset's split (every task a recorded run in the store, served by the recorded responses),
shows a progress bar, and prints accuracy, cost, the share of tasks per mode and the
agreement-but-wrong rate, with the reference points (single models, the zero router's AIQ,
the oracle). ``--pipeline`` may be given several times (a list of routers), and ``--sweep
NAME=V1,V2`` (repeatable) calls the pipeline function with every combination of the values:
one configuration each, and with several configurations the AIQ of their points against the
zero router's over the same cost range. ``--save FILE`` writes the evaluation file
(``orch.eval-report/1``, what ``orch report`` renders) and keeps a journal beside it, so the
same command, run again after an interruption, resumes where it stopped. ``--executor local``
or ``--executor dask --scheduler tcp://HOST:PORT`` runs the tasks as a batch instead (see
:mod:`routers.eval.batch_eval`): on a cluster's workers, with fixed run ids that a rerun finds
in the (shared) store, so no journal is kept. ``--json`` prints
it all as one object, with each task's run id. Part of the CLI, so it may wire ``routers``
into the engine; it imports them only when it runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .render import inert

__all__ = ["eval_command", "parse_sweeps"]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word: a string parameter


def parse_sweeps(sweeps: list[str]) -> list[dict[str, Any]]:
    """``["k=5,20", "lam=0,0.01"]`` -> every combination as keyword arguments, in order."""
    axes: list[tuple[str, list[Any]]] = []
    for s in sweeps:
        name, sep, values = s.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise ValueError(
                f"--sweep {s!r} is not NAME=V1,V2,...; fix: e.g. --sweep lam=0,0.001,0.01"
            )
        if name in dict(axes):
            raise ValueError(f"--sweep names {name!r} twice; fix: give each parameter once")
        axes.append((name, [_value(v.strip()) for v in values.split(",")]))
    if not axes:
        return [{}]
    names = [n for n, _ in axes]
    return [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def _label(name: str, params: dict[str, Any]) -> str:
    return " ".join([name, *(f"{k}={json.dumps(v)}" for k, v in params.items())])


def _journal_name(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)[:60]
    return f"{slug}-{hashlib.sha256(label.encode()).hexdigest()[:10]}.jsonl"


def eval_command(
    dataset: Annotated[
        str, typer.Argument(help="A dataset name (e.g. routerarena) or an orch.eval-dataset file.")
    ],
    pipeline_targets: Annotated[
        list[str],
        typer.Option(
            "--pipeline",
            help="FILE.py[:NAME]: a router to evaluate (input 'question'); repeat for several.",
        ),
    ],
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=V1,V2,...: call the pipeline function with each value (JSON or text); "
            "repeat to sweep a grid."
        ),
    ] = None,
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
    save: Annotated[
        str | None,
        typer.Option(help="Write the evaluation file here (and resume from its journal)."),
    ] = None,
    journal: Annotated[
        str | None,
        typer.Option(help="Folder of the resume journals (default: the --save file + .journal)."),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore existing journals: run every task again.")
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            help="Run the tasks as a batch: local (this process) or dask (with --scheduler). "
            "Default: in this process, without a batch."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="The Dask scheduler's address, tcp://HOST:PORT (with --executor dask)."),
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(help="Tasks per Dask task (default: two per worker slot).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate routers on recorded data; every task is a recorded run."""
    from . import cli  # shared console, error handling and JSON output (imported late)

    @cli.user_errors
    def run() -> None:
        from routers.eval import DatasetError, Point, aiq, eval_services, load_dataset, ndch
        from routers.eval.batch_eval import evaluate_batch
        from routers.eval.evalfile import (
            CurveRecord,
            EvalFile,
            PointRecord,
            References,
            config_of,
        )
        from routers.eval.evalfile import save as save_file
        from routers.eval.harness import EvalReport, evaluate

        from .cli_batch import make_executor
        from .loader import load_pipeline

        if split not in ("train", "val", "test", "all"):
            raise cli.CliError(f"--split {split!r} is not train, val, test or all")
        cli.check_seed(seed)
        runner = make_executor(executor, scheduler, parallel, chunk_size)
        if runner is not None and journal is not None:
            raise cli.CliError(
                "--journal is for evaluations without --executor",
                "drop it: a batch's runs have fixed ids, so the same command finds them in "
                "the store and resumes the interrupted ones",
            )
        try:
            grid = parse_sweeps(sweep or [])
            if runner is None:
                ds = load_dataset(dataset, data)
            else:  # loaded once: the batch reads it again to name the workers' copy
                sparams = eval_services.services_params(dataset, data)
                ds = eval_services.loaded(sparams["dataset"], sparams["data"])[0]
        except (ValueError, DatasetError) as exc:
            raise cli.CliError(str(exc)) from None
        configs = []
        for target in pipeline_targets:
            for params in grid:
                pipe = load_pipeline(target, params or None)
                configs.append((_label(pipe.name, params), pipe, params, target))
        labels = [c[0] for c in configs]
        if len(set(labels)) < len(labels):
            configs = [(f"{c[0]} #{i + 1}", *c[1:]) for i, c in enumerate(configs)]
        scope = ds if split == "all" else ds.split(split)  # type: ignore[arg-type]
        total = min(len(scope), limit) if limit is not None else len(scope)
        if total == 0:
            raise cli.CliError(f"dataset {ds.name!r} has no {split} tasks")
        journals = None  # a batch (--executor) resumes from its fixed run ids instead
        if runner is None and (journal or save):
            journals = Path(journal) if journal else Path(f"{save}.journal")
        reports: list[tuple[str, dict[str, Any], EvalReport]] = []
        with (
            cli._store(store, create=True, writable=True) as st,
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
            for label, pipe, params, target in configs:
                # The description is markup to rich: names from files are escaped for it.
                job = bar.add_task(escape(inert(f"{label} on {ds.name}/{split}")), total=total)

                def advance(done: int, _n: int, job: Any = job) -> None:
                    bar.update(job, completed=done)

                try:
                    if runner is not None:
                        job_fn = partial(
                            evaluate_batch,
                            target,
                            dataset,
                            runner,
                            data=data,
                            store=store,
                            params=params or None,
                            output=output,
                            split=split,
                            limit=limit,
                            seed=seed,
                            progress=advance,
                            fresh=fresh,
                        )
                    else:
                        job_fn = partial(
                            evaluate,
                            pipe,
                            ds,
                            st,
                            output=output,
                            split=split,
                            limit=limit,
                            parallel=parallel,
                            seed=seed,
                            progress=advance,
                            journal=journals / _journal_name(label) if journals else None,
                            fresh=fresh,
                        )
                    report = anyio.run(job_fn)
                except (ValueError, DatasetError) as exc:
                    raise cli.CliError(f"{label}: {exc}") from None
                bar.remove_task(job)
                reports.append((label, params, report))
            location = st.location
        refs = References.of(scope.select(limit=limit) if limit is not None else scope)
        curves = []
        if len(reports) > 1 and refs.zero_router and refs.cost_range:
            points = [Point(r.cost_per_task, r.accuracy, lab) for lab, _, r in reports]
            lo = max(refs.cost_range[0], ndch(points)[0].cost)
            if lo < refs.cost_range[1]:
                span = (lo, refs.cost_range[1])
                curves.append(
                    CurveRecord(
                        label="all configurations",
                        points=[PointRecord.of(p) for p in points],
                        aiq=aiq(points, span),
                        cost_range=span,
                    )
                )
        ev = EvalFile(
            title=f"{', '.join(dict.fromkeys(c[1].name for c in configs))} on {ds.name}",
            dataset=ds.name,
            split=split,
            tasks=total,
            seed=seed,
            store=location,
            references=refs,
            configs=[config_of(r, lab, kw) for lab, kw, r in reports],
            curves=curves,
        )
        if save:
            save_file(ev, save)
        if as_json:
            _emit_json(cli, ev, refs, curves)
            return
        _print_tables(cli, ev, reports, refs, curves, split)
        first = reports[0][2].results[0].run_id
        cli.out.print(Text(inert(f"runs recorded in {location}; first: orch show {first}")))
        if save:
            cli.out.print(
                Text(inert(f"evaluation file: {save}; render it with: orch report {save}"))
            )

    run()


def _summary_json(config: Any) -> dict[str, Any]:
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


def _emit_json(cli: Any, ev: Any, refs: Any, curves: list[Any]) -> None:
    reference: dict[str, Any] = {
        "single_models": [
            {"model": p.label, "accuracy": p.quality, "cost_per_task_usd": p.cost}
            for p in refs.single_models
        ]
    }
    if refs.zero_router_aiq is not None:
        reference["zero_router_aiq"] = refs.zero_router_aiq
        reference["oracle"] = {
            "accuracy": refs.oracle.quality,
            "cost_per_task_usd": refs.oracle.cost,
        }
    if refs.note:
        reference["note"] = refs.note
    configs = [_summary_json(c) for c in ev.configs]
    if len(configs) == 1:  # one router: its summary at the top level, as before sweeps
        cli.emit_json(configs[0] | {"reference": reference})
        return
    cli.emit_json(
        {
            "dataset": ev.dataset,
            "split": ev.split,
            "tasks": ev.tasks,
            "configs": configs,
            "reference": reference,
            "curves": [c.model_dump(mode="json") for c in curves],
        }
    )


def _cell(text: object) -> Text:
    """A table cell from a name, a mode or a notice: recorded or read from files, so inert
    text, never markup."""
    return Text(inert(str(text)))


def _print_tables(
    cli: Any, ev: Any, reports: list[Any], refs: Any, curves: list[Any], split: str
) -> None:
    if len(reports) == 1:
        label, _, report = reports[0]
        s = report.summary()
        table = Table(title=_cell(f"{label} on {ev.dataset} ({split}, {report.tasks} tasks)"))
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
        elif report.resumed:
            table.add_row("resumed from the journal", str(report.resumed))
        if refs.zero_router_aiq is not None:
            table.add_row("zero router AIQ", f"{refs.zero_router_aiq:.4f}")
            o = refs.oracle
            table.add_row("oracle", f"{o.quality:.4f} at ${o.cost:.8f} a task")
        cli.out.print(table)
        return
    table = Table(
        title=_cell(f"{len(reports)} configurations on {ev.dataset} ({split}, {ev.tasks} tasks)")
    )
    for col in ("configuration", "accuracy", "$ a task", "modes", "agreement-but-wrong", "failed"):
        table.add_column(col)
    for label, _, report in reports:
        s = report.summary()
        abw = s["agreement_but_wrong"]
        table.add_row(
            _cell(label),
            f"{s['accuracy']:.4f}",
            f"{s['cost_per_task_usd']:.8f}",
            _cell(", ".join(f"{k} {v:.0%}" for k, v in s["modes"].items()) or "-"),
            "-" if abw is None else f"{abw:.1%}",
            f"[red]{report.failed}[/]" if report.failed else "0",
        )
    cli.out.print(table)
    if refs.zero_router_aiq is not None:
        cli.out.print(
            f"zero router AIQ {refs.zero_router_aiq:.4f}; oracle {refs.oracle.quality:.4f} at "
            f"${refs.oracle.cost:.8f} a task"
        )
    from routers.eval import aiq

    for c in curves:
        lo, hi = c.cost_range
        zero = aiq([p.point() for p in refs.zero_router], (lo, hi))
        cli.out.print(
            f"AIQ of the configurations' hull over [${lo:.8f}, ${hi:.8f}]: {c.aiq:.4f}; "
            f"the zero router's there: {zero:.4f} ({c.aiq - zero:+.4f})"
        )
