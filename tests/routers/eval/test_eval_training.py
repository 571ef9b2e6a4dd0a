"""Router state fitted from training tasks: kNN examples, ability priors, intent examples,
EMA feedback and the validation holdout, checked by hand on a tiny dataset."""

from __future__ import annotations

import pytest

from routers._ema import EMAState, apply_feedback
from routers.eval import Dataset, Sample, Task
from routers.eval._training import (
    ability_priors,
    ema_observations,
    holdout,
    intent_examples,
    knn_examples,
)


def tiny() -> Dataset:
    def task(i: int, group: str, a: float, b: float | None) -> Task:
        responses = {"a": [Sample(text="x", score=a, cost_usd=0.001)]}
        if b is not None:
            responses["b"] = [Sample(text="y", score=b, cost_usd=0.01)]
        return Task(id=f"t{i}", question=f"q{i} {group}", group=group, responses=responses)

    return Dataset(
        name="tiny",
        tasks=[
            task(0, "math", 1.0, 0.0),
            task(1, "math", 0.0, 1.0),
            task(2, "code", 1.0, None),  # b has no sample here
            task(3, "code", 1.0, 1.0),
        ],
    )


def test_knn_examples_keep_only_tasks_every_model_scored() -> None:
    ex = knn_examples(tiny())
    assert [e["query"] for e in ex] == ["q0 math", "q1 math", "q3 code"]
    assert ex[0] == {
        "query": "q0 math",
        "quality": {"a": 1.0, "b": 0.0},
        "cost_usd": {"a": 0.001, "b": 0.01},
    }


def test_ability_priors_are_per_group_means() -> None:
    assert ability_priors(tiny()) == {
        "a": {"code": 1.0, "math": 0.5},
        "b": {"code": 1.0, "math": 0.5},
    }


def test_intent_examples_take_the_first_per_group() -> None:
    got = intent_examples(tiny(), per_group=1)
    assert [(e.text, e.task) for e in got] == [("q0 math", "math"), ("q2 code", "code")]
    with pytest.raises(ValueError, match="per_group"):
        intent_examples(tiny(), per_group=0)


def test_ema_observations_in_task_then_model_order() -> None:
    obs = ema_observations(tiny())
    assert [(o.agent, o.quality) for o in obs] == [
        ("a", 1.0), ("b", 0.0), ("a", 0.0), ("b", 1.0), ("a", 1.0), ("a", 1.0), ("b", 1.0)
    ]  # fmt: skip
    state = apply_feedback(EMAState(), obs)
    # a: 1 -> 0.8·1 + 0.2·0 = 0.8 -> 0.84 -> 0.872 (the first observation initialises)
    assert state.stats("a").quality == pytest.approx(0.872)
    assert state.stats("a").cost_usd == pytest.approx(0.001)


def test_holdout_is_a_deterministic_partition() -> None:
    data = Dataset(
        name="many",
        tasks=[Task(id=f"t{i}", question=f"q{i}", responses={}) for i in range(200)],
    )
    fit, val = holdout(data, 0.25)
    _, again_val = holdout(data, 0.25)
    assert [t.id for t in val] == [t.id for t in again_val]
    assert sorted(t.id for t in fit.tasks + val.tasks) == sorted(t.id for t in data.tasks)
    assert 30 <= len(val) <= 70  # about a quarter
    with pytest.raises(ValueError, match="fraction"):
        holdout(data, 1.0)
