"""``orch batch``: one pipeline over many inputs, each a recorded run, here or on a cluster.

``orch batch FILE.py[:NAME] --inputs FILE.jsonl`` reads one JSON object of pipeline inputs per
line and runs the pipeline once per line through an executor: ``--executor local`` (the
default: this process, ``--parallel`` runs at once) or ``--executor dask --scheduler
tcp://HOST:PORT`` (the workers of a Dask cluster, ``--parallel`` runs at once per task). Runs
are recorded in ``--store`` (shared by every worker) as ``BATCH-INDEX``; the batch id defaults
to a hash of the pipeline spec, inputs and seeds, so the same command run again returns the
recorded runs and resumes any that were interrupted. The summary gives the counts, the failed
and the retried runs and the run ids; ``--json`` prints every run. Exit 1 when a run failed.
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

import orch.cli.common as cli
from orch.batch import BatchResult, BatchSpec, make_executor, read_inputs
from orch.errors import BatchInputError
from orch.render._terminal import inert

__all__ = ["batch_command"]
_SHOWN = 20  # runs listed one by one in the text summary; --json has them all


@cli.user_errors
def batch_command(
    target: Annotated[str, typer.Argument(help="FILE.py[:NAME]; NAME defaults to 'pipeline'.")],
    inputs_file: Annotated[
        str, typer.Option("--inputs", help="JSONL file: one JSON object of inputs per run.")
    ],
    services: Annotated[
        str | None,
        typer.Option(
            help="FILE.py[:NAME] of the services (a dict, or a function returning one; NAME "
            "defaults to 'services'). Default: the pipeline file's own 'services'."
        ),
    ] = None,
    executor: Annotated[
        str, typer.Option(help="Where runs execute: local (this process) or dask.")
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(help="The Dask scheduler's address, tcp://HOST:PORT (with --executor dask)."),
    ] = None,
    parallel: Annotated[
        int, typer.Option(help="Runs at once: in this process, or per Dask task.")
    ] = 16,
    chunk_size: Annotated[
        int | None, typer.Option(help="Inputs per Dask task (default: about 4 per worker slot).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Store location every worker can reach: a directory, sqlite:///file.db or a "
            "database URL. Default: $ORCH_STORE, else .orch/ in the working directory."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Batch seed: each run's seed derives from it.")] = 0,
    batch_id: Annotated[
        str | None,
        typer.Option(
            help="Names the runs (BATCH-INDEX). Default: a hash of pipeline, inputs and seeds."
        ),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(help="Steps at once within each run.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a pipeline once per line of a JSONL file, locally or on a Dask cluster."""
    cli.check_seed(seed)
    runner = make_executor(executor, scheduler, parallel, chunk_size)
    assert runner is not None  # --executor defaults to local here
    inputs, lines = read_inputs(inputs_file)
    try:
        spec = BatchSpec.create(
            target,
            inputs,
            store=store,
            services=services,
            seed=seed,
            batch_id=batch_id,
            max_concurrency=max_concurrency,
        )
    except BatchInputError as exc:
        line = lines[exc.index]
        raise cli.CliError(
            f"{inputs_file} line {line}: " + str(exc).removeprefix(f"input #{exc.index}: "),
            f"correct line {line} of {inputs_file}",
        ) from None
    runner.check(spec)
    if executor == "local":  # a cluster's workers may see another file system than ours
        cli.open_cli_store(spec.store, create=True, writable=True).close()
    result = _run_with_progress(runner, spec, executor, quiet=as_json)
    if as_json:
        cli.emit_json(result.to_json() | {"lines": lines})
    else:
        _print_summary(result, lines, scheduler)
    if not result.ok:
        raise typer.Exit(1)


def _run_with_progress(runner: Any, spec: BatchSpec, executor: str, quiet: bool) -> BatchResult:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=cli.err,
        disable=quiet,
        transient=True,
    ) as bar:
        job = bar.add_task(
            escape(inert(f"batch {spec.batch_id} ({executor})")), total=len(spec.items)
        )

        def advance(done: int, _total: int) -> None:
            bar.update(job, completed=done)

        result: BatchResult = anyio.run(partial(runner.run_batch, spec, progress=advance))
    return result


def _print_summary(result: BatchResult, lines: list[int], scheduler: str | None) -> None:
    # Run ids, errors and notices come from the store and the workers: inert text, no markup.
    s = result.summary()
    where = f"dask at {scheduler}" if result.executor == "dask" else "this process"
    head = Text("batch ")
    head.append(inert(result.batch_id), style="bold")
    head.append(inert(f": {s['runs']} runs of {result.pipeline} on {where} in {s['seconds']:.2f}s"))
    cli.out.print(head, highlight=False)
    counts = f"ok {s['ok']}, failed {s['failed']}, error {s['error']}"
    extra = []
    if s["retried"]:
        extra.append(f"resumed after an interruption {len(s['retried'])}")
    if s["from_store"]:
        extra.append(f"already finished in the store {s['from_store']}")
    if s["store_reconnects"]:
        extra.append(f"store connection lost and reopened {s['store_reconnects']}")
    cli.out.print("  " + "; ".join([counts, *extra]), highlight=False)
    first, last = result.items[0].run_id, result.items[-1].run_id
    cli.out.print(
        Text(
            inert(
                f"  runs {first} ... {last} in {result.store}; inspect one with: orch show {first}"
            )
        ),
        highlight=False,
    )
    if result.notices:
        cli.out.print(f"  notices ({len(result.notices)}), from the processes that ran it:")
        for line in result.notices[:_SHOWN]:
            cli.out.print(Text(f"    {inert(line)}"), highlight=False)
        if len(result.notices) > _SHOWN:
            cli.out.print(f"    ... {len(result.notices) - _SHOWN} more; --json lists them all")
    bad = [r for r in result.items if r.status != "ok"]
    for title, rows in (("not ok", bad), ("retried", result.retried)):
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for col in ("input", "line", "run", "status", "detail"):
            table.add_column(col)
        for r in rows[:_SHOWN]:
            detail = r.error or (f"resumed from {r.resumed_from}" if r.resumed_from else "")
            table.add_row(
                str(r.index),
                str(lines[r.index]),
                Text(inert(r.run_id)),
                Text(inert(r.status)),
                Text(inert(detail)),
            )
        cli.out.print(table)
        if len(rows) > _SHOWN:
            cli.out.print(f"  ... {len(rows) - _SHOWN} more; --json lists every run")
