"""Studies: sweeps and pipeline targets become labelled configurations, each evaluated through
the engine, and the evaluation file gathers their runs, the references of the evaluated tasks
and the AIQ curve against the zero router, the same wherever the runs were placed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from eval_batch_files import eval_files

from orch import LocalExecutor, PipelineLoadError
from routers.eval import (
    Configuration,
    Study,
    aiq_curve,
    configurations,
    parse_sweeps,
    zero_router_aiq,
)
from routers.eval._evalfile import References, load, save
from routers.eval._harness import EvalReport
from traces import ArtifactStore, MemoryStore
from traces._open import open_store


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    data, router = eval_files(tmp_path)
    return str(data), f"{router}:router"


FACTORY = """
from orch import PipelineBuilder
from routers import baselines


def make(model="cheap"):
    if model == "random":
        agent = baselines.random_router.with_config(models=["cheap", "dear"])
    else:
        agent = baselines.single.with_config(model=model)
    p = PipelineBuilder(model)
    p.output("answer", p.node("r", agent, question=p.input("question", str)))
    return p.build()
"""


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.py"
    path.write_text(FACTORY)
    return f"{path}:make"


def test_sweeps_are_every_combination_in_order() -> None:
    assert parse_sweeps([]) == [{}]
    assert parse_sweeps(["k=5,20", "lam=0,0.01", "kind=knn"]) == [
        {"k": 5, "lam": 0, "kind": "knn"},
        {"k": 5, "lam": 0.01, "kind": "knn"},
        {"k": 20, "lam": 0, "kind": "knn"},
        {"k": 20, "lam": 0.01, "kind": "knn"},
    ]
    # Values are JSON, else text; a value cannot hold a comma (the values' separator).
    assert parse_sweeps(['models=["a"],[]', "name=knn,null"]) == [
        {"models": ["a"], "name": "knn"},
        {"models": ["a"], "name": None},
        {"models": [], "name": "knn"},
        {"models": [], "name": None},
    ]
    with pytest.raises(ValueError, match="is not NAME=V1,V2"):
        parse_sweeps(["k"])
    with pytest.raises(ValueError, match="names 'k' twice"):
        parse_sweeps(["k=1", "k=2"])


def test_configurations_are_labelled_and_numbered_when_labels_repeat(
    files: tuple[str, str],
) -> None:
    _, router = files
    made = configurations([router], ['models=["cheap"],["dear"]'])
    assert [c.label for c in made] == [
        'random-cheap models=["cheap"]',
        'random-dear models=["dear"]',
    ]
    assert [c.params for c in made] == [{"models": ["cheap"]}, {"models": ["dear"]}]
    assert made[1].pipeline.name == "random-dear" and made[1].target == router
    twice = configurations([router, router])
    assert [c.label for c in twice] == ["random-cheap-dear #1", "random-cheap-dear #2"]
    with pytest.raises(PipelineLoadError, match="colour"):
        configurations([router], ["colour=red"])


def test_a_study_needs_a_known_split_and_a_configuration(files: tuple[str, str]) -> None:
    data, router = files
    with pytest.raises(ValueError, match="is not train, val, test or all"):
        Study(data, configurations([router]), split="dev")
    with pytest.raises(ValueError, match="needs a configuration"):
        Study(data, [])
    with pytest.raises(ValueError, match="has no val tasks"):
        Study(data, configurations([router]), split="val").tasks()


def measure_all(study: Study, store: ArtifactStore | str, **kw: Any) -> list[EvalReport]:
    async def run() -> list[EvalReport]:
        return [await study.measure(c, store, **kw) for c in study.configurations]

    return anyio.run(run)


def test_the_evaluation_file_of_a_sweep_has_its_runs_references_and_curve(
    files: tuple[str, str], factory: str, tmp_path: Path
) -> None:
    data, _ = files
    configs = configurations([factory], ["model=cheap,dear,random"])
    study = Study(data, configs, limit=20, seed=4)
    store = MemoryStore()
    reports = measure_all(study, store)
    ev = study.file(reports, store.location)
    assert (ev.dataset, ev.split, ev.tasks, ev.seed, ev.store) == (
        "batch-tiny",
        "test",
        20,
        4,
        "memory",
    )
    assert ev.title == "cheap, dear, random on batch-tiny"
    assert [c.label for c in ev.configs] == [c.label for c in configs]
    assert [c.summary["accuracy"] for c in ev.configs] == [
        0.5,
        1.0,
        ev.configs[2].summary["accuracy"],
    ]
    assert [len(c.runs) for c in ev.configs] == [20, 20, 20]
    assert ev.configs[0].runs[0].run_id == f"{reports[0].batch_id}-00000"
    # The references are those of the 20 evaluated tasks, not of the whole split (32).
    assert len(study.tasks()) == 20 and ev.references == References.of(study.tasks())
    assert [p.quality for p in ev.references.single_models] == [0.5, 1.0]
    (curve,) = ev.curves
    assert curve.label == "all configurations" and len(curve.points) == 3
    assert curve == aiq_curve(
        "all configurations", [p.point() for p in curve.points], ev.references
    )
    # The single models are the zero router's hull and two of the points: the sweep's hull
    # is at least the zero router's over the same range.
    assert curve.cost_range is not None and curve.aiq is not None
    assert curve.aiq >= zero_router_aiq(ev.references, curve.cost_range)
    assert load(save(ev, tmp_path / "ev.json")) == ev
    one = Study(data, configs[:1], limit=20, seed=4)
    assert one.file(reports[:1]).curves == []
    with pytest.raises(ValueError, match="3 reports for 1 configurations"):
        one.file(reports)


def test_a_study_through_an_executor_finds_the_runs_made_here(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    study = Study(data, configurations([router]), limit=8)
    store = str(tmp_path / "store")
    with open_store(store) as st:
        (here,) = measure_all(study, st)
    (placed,) = measure_all(study, store, executor=LocalExecutor(2))
    assert (placed.resumed, placed.tasks) == (8, 8)
    assert study.file([placed]).configs == study.file([here]).configs
    (again,) = measure_all(study, store, executor=LocalExecutor(2), fresh=True)
    assert again.resumed == 0 and again.batch_id == f"{placed.batch_id}-f2"


def test_a_configuration_is_a_target_at_a_setting(files: tuple[str, str]) -> None:
    _, router = files
    (config,) = configurations([router])
    assert config == Configuration("random-cheap-dear", router, {}, config.pipeline)
