"""Evaluations placed by an executor (``evaluate(..., executor=...)``): the same run ids, root
hashes and grades as in this process, found again in the store on a rerun whichever placement
made them, and the workers' data checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_batch_files import eval_dataset, eval_files, same_question_in_two_splits

from orch import BatchSpec, ExecutorError, LocalExecutor, load_pipeline
from routers.eval import DatasetError, eval_services, evaluate
from routers.eval._task_runs import task_items, task_seed
from traces import MemoryStore, verify_run
from traces._open import open_store


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    data, router = eval_files(tmp_path)
    return str(data), f"{router}:router"


async def test_a_batch_gives_the_in_process_runs_and_grades(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    store = str(tmp_path / "store")
    report = await evaluate(router, data, executor=LocalExecutor(4), store=store, seed=3)
    reference = await evaluate(load_pipeline(router), eval_dataset(40), MemoryStore(), seed=3)
    assert report.tasks == reference.tasks == 32  # the test split
    assert [r.task for r in report.results] == [r.task for r in reference.results]
    assert [r.root_hash for r in report.results] == [r.root_hash for r in reference.results]
    # One naming of runs: the evaluation made here has the batch's run ids too.
    assert [r.run_id for r in report.results] == [r.run_id for r in reference.results]
    assert [(r.score, r.calls, r.chosen) for r in report.results] == [
        (r.score, r.calls, r.chosen) for r in reference.results
    ]
    assert report.summary() | {"seconds": 0} == reference.summary() | {"seconds": 0}
    assert {r.chosen[0] for r in report.results} == {"cheap", "dear"}  # seeds per task
    assert report.batch_id is not None and report.results[0].run_id == f"{report.batch_id}-00000"
    assert (report.resumed, report.retried) == (0, 0)
    with open_store(store) as st:
        assert all(verify_run(st, r.run_id).ok for r in report.results)


async def test_a_rerun_finds_every_run_and_fresh_makes_new_ones(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    store = str(tmp_path / "store")
    first = await evaluate(router, data, executor=LocalExecutor(4), store=store, limit=10)
    again = await evaluate(router, data, executor=LocalExecutor(4), store=store, limit=10)
    assert (again.batch_id, again.resumed) == (first.batch_id, 10)
    assert [r.root_hash for r in again.results] == [r.root_hash for r in first.results]
    fresh = await evaluate(
        router, data, executor=LocalExecutor(4), store=store, limit=10, fresh=True
    )
    assert fresh.batch_id == f"{first.batch_id}-f2" and fresh.resumed == 0
    assert [r.root_hash for r in fresh.results] == [r.root_hash for r in first.results]
    other_seed = await evaluate(
        router, data, executor=LocalExecutor(4), store=store, limit=10, seed=1
    )
    assert other_seed.batch_id != first.batch_id


async def test_sweep_parameters_reach_the_pipeline_function(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    report = await evaluate(
        router,
        data,
        executor=LocalExecutor(2),
        store=str(tmp_path / "s"),
        params={"models": ["dear"]},
    )
    assert report.router == "random-dear" and report.accuracy == 1.0
    assert all(r.calls == [("dear", 0)] for r in report.results)


async def test_runs_made_here_are_found_through_an_executor_and_back(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    store = str(tmp_path / "store")
    here = await evaluate(load_pipeline(router), data, store, limit=12)
    assert (here.resumed, here.tasks) == (0, 12)
    placed = await evaluate(router, data, store, executor=LocalExecutor(3), limit=12)
    assert placed.resumed == 12  # nothing ran again
    assert [r.run_id for r in placed.results] == [r.run_id for r in here.results]
    assert [r.score for r in placed.results] == [r.score for r in here.results]
    more = await evaluate(router, data, store, executor=LocalExecutor(3), limit=20)
    assert more.resumed == 0  # other tasks: another evaluation, another batch
    again = await evaluate(load_pipeline(router), data, store, limit=20)
    assert (again.resumed, again.batch_id) == (20, more.batch_id)


def test_the_tasks_of_a_built_pipeline_are_the_batch_inputs_it_would_make(
    files: tuple[str, str], tmp_path: Path
) -> None:
    _, router = files
    tasks = eval_dataset(40).tasks[:7]
    spec = BatchSpec.create(
        router,
        [{"question": t.question} for t in tasks],
        store=str(tmp_path / "s"),
        seeds=[task_seed(9, t.id) for t in tasks],
        batch_id="eval-abc",
    )
    made = task_items("eval-abc", load_pipeline(router).spec_hash, tasks, 9)
    assert tuple(made) == spec.items  # run ids, inputs, seeds and fingerprints


async def test_what_workers_cannot_get_is_refused_before_anything_runs(
    files: tuple[str, str], tmp_path: Path
) -> None:
    data, router = files
    executor = LocalExecutor(1)
    store = str(tmp_path / "s")
    with pytest.raises(TypeError, match=r"fix: pass its target FILE\.py"):
        await evaluate(load_pipeline(router), data, store, executor=executor)
    with pytest.raises(ValueError, match=r"fix: pass its name or an orch\.eval-dataset file"):
        await evaluate(router, eval_dataset(40), store, executor=executor)
    with pytest.raises(ValueError, match="services extra are objects"):
        await evaluate(router, data, store, executor=executor, services={"extra": 1})
    with pytest.raises(TypeError, match="fix: pass its location"):
        await evaluate(router, data, MemoryStore(), executor=executor)
    with pytest.raises(ValueError, match="params are for a pipeline target"):
        await evaluate(load_pipeline(router), data, store, params={"models": ["dear"]})
    assert not (tmp_path / "s").exists()


async def test_a_memory_store_is_refused(files: tuple[str, str]) -> None:
    data, router = files
    with pytest.raises(ValueError, match="'memory:' lives inside one process"):
        await evaluate(router, data, executor=LocalExecutor(2), store="memory:")


async def test_a_worker_whose_data_differs_refuses(files: tuple[str, str], tmp_path: Path) -> None:
    data, router = files
    params = eval_services.services_params(data, None)
    assert eval_services.services(**params)["models"] is not None
    with pytest.raises(DatasetError, match="fix: give every worker the same copy"):
        eval_services.services(**(params | {"digest": "sha256:" + "0" * 64}))
    spec = BatchSpec.create(
        router,
        [{"question": "Question 1: A or B?"}],
        store=str(tmp_path / "s"),
        services=eval_services.TARGET,
        services_params=params | {"digest": "sha256:" + "0" * 64},
    )
    with pytest.raises(DatasetError, match="digest"):
        await LocalExecutor(1).run_batch(spec)


def test_services_parameters_need_services_and_json(files: tuple[str, str]) -> None:
    _, router = files
    inputs = [{"question": "q"}]
    with pytest.raises(ExecutorError, match="without services"):
        BatchSpec.create(router, inputs, store="memory:", services_params={"a": 1})
    with pytest.raises(ExecutorError, match="fix: give JSON values"):
        BatchSpec.create(router, inputs, store="memory:", params={"models": {1, 2}})


async def test_workers_serve_the_evaluated_split_its_own_recordings(tmp_path: Path) -> None:
    data = str(same_question_in_two_splits().save(tmp_path / "twice.json"))
    router = tmp_path / "one.py"
    router.write_text(ONE_MODEL)
    store = str(tmp_path / "s")
    test = await evaluate(str(router), data, executor=LocalExecutor(1), store=store, split="test")
    train = await evaluate(str(router), data, executor=LocalExecutor(1), store=store, split="train")
    assert (test.accuracy, test.results[0].answer) == (1.0, "A")
    assert (train.accuracy, train.results[0].answer) == (0.0, "B")


ONE_MODEL = """
from orch import PipelineBuilder
from routers import baselines

p = PipelineBuilder("single-m")
p.output("answer", p.node("r", baselines.single.with_config(model="m"),
                          question=p.input("question", str)))
pipeline = p.build()
"""
