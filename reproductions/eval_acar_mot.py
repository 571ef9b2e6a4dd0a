"""The ACAR table on the MoT recordings (DATE and GSM8K): one model, two and three models
always, σ-routing; accuracy, cost, share per mode, agreement-but-wrong, McNemar.

Reads the shared MoT-cascade recordings at run time (``$ORCH_EVAL_DATA`` or the nearest
``shared/data/``; the source states no license, so none of it is copied here) and says
"skipped" when they are absent. On each dataset's test split, every configuration runs the
same tasks, each task a recorded run of the engine (``orch show RUN`` takes the run ids in
the saved files). How the paper's roles map onto these models, the rule that stands in for
the judge (the data has no judge recordings: it is a rule, not an LLM) and the cost model
are in ``reproductions/docs/acar-mot.md`` and in each table's note. Run::

    python reproductions/eval_acar_mot.py [--limit N] [--parallel 4] [--save-dir eval-acar]

It writes one evaluation file per dataset (``orch.eval-report/1``: every configuration's
runs, the ACAR table, the McNemar table, the paper's figures), for ``orch report FILE``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Literal

import anyio

from orch_reproductions.acar_table import ACARSetup, Measured, measure, paper_table, render
from orch_reproductions.mot_views import covering, mot_per_call_costs, pad_samples
from routers.eval import (
    Dataset,
    DataUnavailable,
    EvalFile,
    PointRecord,
    References,
    config_of,
    load_dataset,
    save,
    single_models,
)
from traces import ArtifactStore, open_store

DATASETS = ["mot-date", "mot-gsm8k"]
SETUPS = {
    "mot-date": ACARSetup(
        probe="gpt-3.5-turbo[cot1]",
        strong="gpt-4[greedy_cot1]",
        third="llama-2-13b[cot1]",
        roles=(
            "probe = gpt-3.5-turbo[cot1] (the MoT cascade's weak model, samples 0-2 of its 20 "
            "non-greedy samples); verifiers and ensemble = gpt-4[greedy_cot1] (strong, greedy) and "
            "llama-2-13b[cot1] (sample 0): three distinct models, but the third is the weakest"
        ),
    ),
    "mot-gsm8k": ACARSetup(
        probe="llama-2-13b[pot1]",
        strong="gpt-4[cot1]",
        third="gpt-4[pot1]",
        roles=(
            "the GSM8K recordings have two models only (no gpt-3.5 samples; llama-2-13b on the "
            "first 400 questions): probe = llama-2-13b[pot1] (samples 0-2 of up to 24); "
            "verifiers and ensemble = gpt-4[cot1] and gpt-4[pot1] (sample 0), i.e. the strong "
            "model under two prompts stands in for two strong models"
        ),
    ),
}
JUDGE_NOTE = (
    "judge: no judge recordings exist, so full mode's judge is a deterministic rule served as "
    "model 'rule-judge[...]' (not an LLM, costs nothing, not counted in calls/task): "
    "majority-strong = the answer most of the three responses give, all different -> the "
    "strong model's; rows '· judge=strong' always take the strong model's response"
)
Cost = Literal["per-call", "adapter"]
COST_NOTE = {
    "per-call": (
        "cost: every call pays its whole few-shot prompt plus its output (the adapter's token "
        "estimates at the repo's prices; llama-2-13b $0.20/M is our choice)"
    ),
    "adapter": (
        "cost: the adapter's shared-prompt model (a question's prompt spread over a file's "
        "samples, as the MoT repo counts one n-sample call)"
    ),
}


def prepare(name: str, cost: Cost) -> tuple[Dataset, list[str]]:
    """The test split on which every role's model answered, with the notes it needs."""
    setup = SETUPS[name]
    full = load_dataset(name).split("test")
    data = covering(full, setup.models)
    if cost == "per-call":
        data = mot_per_call_costs(data)
    data = pad_samples(data, setup.probe, setup.n_probes)
    padded = sum(1 for t in data.tasks if setup.probe in t.meta.get("padded", {}))
    notes = [
        f"tasks: the {len(data)} of {len(full)} test tasks every role's model answered",
        f"roles: {setup.roles}",
        JUDGE_NOTE,
        COST_NOTE[cost],
        (
            f"probe padding: {padded} task(s) where the source kept fewer than "
            f"{setup.n_probes} probe samples (failed programs dropped) count the missing "
            "probes as calls with no answer"
        ),
        "latency: the recordings have none (replay time is not model time); calls/task is the "
        "proxy",
    ]
    return data, notes


def evaluation_file(
    measured: Measured, data: Dataset, notes: list[str], store: ArtifactStore, command: str
) -> EvalFile:
    used = set(measured.setup.models)
    singles = [
        PointRecord(label=m.model, cost=m.cost or 0.0, quality=m.quality)
        for m in single_models(data)
        if m.model in used
    ]
    note = "; ".join(notes)
    return EvalFile(
        title=f"ACAR table on {data.name} (test)",
        dataset=data.name,
        split="test",
        tasks=measured.configs[0][1].tasks,
        seed=0,
        store=store.location,
        command=command,
        references=References(
            single_models=singles,
            note="mean score and cost per call over all recorded samples of the role models",
        ),
        configs=[config_of(r, c.label, c.params) for c, r in measured.configs],
        tables=[*measured.tables(note), paper_table()],
        notes=notes,
    )


async def main_async(
    limit: int | None, parallel: int, save_dir: Path, store_at: str | None, cost: Cost
) -> int:
    prepared: list[tuple[str, Dataset, list[str]]] = []
    for name in DATASETS:
        try:
            data, notes = prepare(name, cost)
        except DataUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
        prepared.append((name, data, notes))
    command = shlex.join(["python", "reproductions/eval_acar_mot.py", *sys.argv[1:]])
    with open_store(store_at) as store:
        for name, data, notes in prepared:
            setup = SETUPS[name]
            started = time.perf_counter()
            measured = await measure(data, setup, store, limit=limit, parallel=parallel)
            seconds = time.perf_counter() - started
            ev = evaluation_file(measured, data, notes, store, command)
            acar_tab, mcnemar_tab, _ = ev.tables
            print(render(acar_tab.model_copy(update={"note": None})))
            print()
            print(render(mcnemar_tab.model_copy(update={"note": None})))
            wrong, saved = measured.recoverable()
            n = ev.tasks
            print(
                f"agreement-but-wrong: {wrong} of {n} tasks ({wrong / n:.1%}) had σ = 0 and a "
                f"wrong answer; 'three models, always' gets {saved} of them right"
            )
            for line in notes:
                print(f"  {line}")
            path = save(ev, save_dir / f"acar-{name}.json")
            print(f"{len(ev.configs)} configurations x {n} tasks in {seconds:.1f} s; saved {path}")
            print()
    print(render(paper_table()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N test tasks")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once")
    parser.add_argument(
        "--save-dir", type=Path, default=Path("eval-acar"), help="where the files go"
    )
    parser.add_argument(
        "--store", default=None, help="store location (default: $ORCH_STORE or .orch)"
    )
    parser.add_argument(
        "--cost", choices=["per-call", "adapter"], default="per-call", help="cost model"
    )
    args = parser.parse_args(argv)
    return anyio.run(main_async, args.limit, args.parallel, args.save_dir, args.store, args.cost)


if __name__ == "__main__":
    sys.exit(main())
