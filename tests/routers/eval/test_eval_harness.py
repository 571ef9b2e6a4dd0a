"""The evaluation harness: every task a recorded run of the real engine, graded from the
run's own model calls, with the same figures as the data itself says."""

from __future__ import annotations

import pytest
from eval_batch_files import same_question_in_two_splits
from example_modules import dataset_or_skip

from orch import PipelineBuilder
from orch.testing import aassert_replays_clean
from routers import baselines
from routers.eval import Dataset, Sample, Task, recorded_hub
from routers.eval._harness import evaluate, grade
from routers.eval._reference import single_models
from routers.eval._task_runs import task_seed
from traces import MemoryStore
from traces._runview import load_run_view
from traces._verify import verify_run


def pipe(agent: object) -> object:
    p = PipelineBuilder(getattr(agent, "name", "router"))
    p.output("answer", p.node("r", agent, question=p.input("question", str)))
    return p.build()


def tiny() -> Dataset:
    def task(i: int, cheap_right: bool) -> Task:
        return Task(
            id=f"t{i}",
            question=f"Question {i}: pick A or B.",
            gold="A",
            responses={
                "cheap": [
                    Sample(
                        text="A" if cheap_right else "B", score=float(cheap_right), cost_usd=0.001
                    )
                ],
                "dear": [Sample(text="A", score=1.0, cost_usd=0.01)],
            },
        )

    return Dataset(name="tiny", tasks=[task(i, i % 2 == 0) for i in range(8)])


async def test_single_models_through_the_engine_score_as_the_data_says() -> None:
    store = MemoryStore()
    cheap = await evaluate(pipe(baselines.single.with_config(model="cheap")), tiny(), store)
    dear = await evaluate(pipe(baselines.single.with_config(model="dear")), tiny(), store)
    assert (cheap.tasks, cheap.accuracy, cheap.cost_usd) == (8, 0.5, pytest.approx(0.008))
    assert (dear.accuracy, dear.cost_usd) == (1.0, pytest.approx(0.08))
    assert [r.task for r in cheap.results] == [f"t{i}" for i in range(8)]  # task order
    assert all(r.calls == [("cheap", 0)] for r in cheap.results)
    # Every figure traces back to a recorded run that verifies and replays clean.
    first = cheap.results[0]
    assert verify_run(store, first.run_id).ok
    await aassert_replays_clean(
        first.run_id,
        store=store,
        pipeline=pipe(baselines.single.with_config(model="cheap")),
        services={"models": recorded_hub(tiny())},
    )


async def test_parallel_runs_give_the_same_results_and_root_hashes() -> None:
    router = pipe(baselines.random_router.with_config(models=["cheap", "dear"]))
    one = await evaluate(router, tiny(), MemoryStore(), parallel=1)
    many = await evaluate(router, tiny(), MemoryStore(), parallel=8)
    assert [r.root_hash for r in one.results] == [r.root_hash for r in many.results]
    # Each task has its own seed, so the random router does not pick one model for all.
    assert {r.chosen[0] for r in one.results} == {"cheap", "dear"}
    assert task_seed(0, "t1") != task_seed(0, "t2") and task_seed(0, "t1") == task_seed(0, "t1")


def test_grading_rules() -> None:
    t = tiny().tasks[1]  # cheap is wrong here
    routed = baselines.Routed(answer="B", models_invoked=["cheap"], chosen=["cheap"], cost_usd=0)
    assert grade(t, routed, [("cheap", 0)]) == 0.0  # the chosen model's recorded score
    merged = baselines.Routed(answer=" a ", models_invoked=["cheap", "dear"], chosen=[], cost_usd=0)
    assert grade(t, merged, [("cheap", 0), ("dear", 0)]) == 1.0  # against gold, normalised
    none = baselines.Routed(answer=None, models_invoked=[], chosen=[], cost_usd=0)
    assert grade(t, none, []) == 0.0


async def test_bad_pipelines_are_named() -> None:
    p = PipelineBuilder("no-question")
    p.output(
        "a", p.node("r", baselines.single.with_config(model="cheap"), question=p.input("q", str))
    )
    with pytest.raises(ValueError, match="has no input 'question'"):
        await evaluate(p.build(), tiny(), MemoryStore())


async def test_routerarena_single_models_match_the_recorded_scores() -> None:
    data = dataset_or_skip("routerarena")
    test = data.split("test").select(limit=120)
    expected = {m.model: m for m in single_models(test)}
    for model in data.models:
        report = await evaluate(
            pipe(baselines.single.with_config(model=model)), test, MemoryStore(), parallel=8
        )
        assert report.failed == 0
        assert report.accuracy == pytest.approx(expected[model].quality)
        assert report.cost_per_task == pytest.approx(expected[model].cost)


async def test_run_records_price_calls_at_the_datasets_prices() -> None:
    from routers.eval import Price

    data = Dataset(
        name="priced",
        prices={"m": Price(input_per_mtok=1.0, output_per_mtok=2.0)},
        tasks=[
            Task(
                id="t0",
                question="Pick A or B.",
                gold="A",
                responses={"m": [Sample(text="A", score=1.0, input_tokens=100, output_tokens=50)]},
            )
        ],
    )
    store = MemoryStore()
    report = await evaluate(pipe(baselines.single.with_config(model="m")), data, store)
    assert report.cost_usd == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)  # from the dataset
    view = load_run_view(store, report.results[0].run_id)
    (effect,) = [e for s in view.steps.values() for e in s.effects]
    assert effect.cost_usd == pytest.approx(report.cost_usd)  # and in the run's own record


async def test_a_split_is_served_its_own_recordings_of_a_question_in_two_splits() -> None:
    router = pipe(baselines.single.with_config(model="m"))
    ds = same_question_in_two_splits()
    test = await evaluate(router, ds, MemoryStore(), split="test")
    train = await evaluate(router, ds, MemoryStore(), split="train")
    assert (test.accuracy, test.results[0].answer) == (1.0, "A")
    assert (train.accuracy, train.results[0].answer) == (0.0, "B")
