"""Single models, the zero router and the oracle on a dataset small enough to work by hand."""

from __future__ import annotations

import pytest

from routers.eval import Dataset, Sample, Task, aiq
from routers.eval._reference import oracle, single_models, zero_router


def s(score: float, cost: float) -> Sample:
    return Sample(score=score, cost_usd=cost)


def dataset() -> Dataset:
    # cheap: right on t1, t2; mid: right on t1, t3; dear: right on all but t4.
    plan = {
        "t1": {"cheap": [s(1, 1.0)], "mid": [s(1, 2.0)], "dear": [s(1, 10.0)]},
        "t2": {"cheap": [s(1, 1.0)], "mid": [s(0, 2.0)], "dear": [s(1, 10.0)]},
        "t3": {"cheap": [s(0, 1.0)], "mid": [s(1, 2.0)], "dear": [s(1, 10.0)]},
        "t4": {"cheap": [s(0, 1.0)], "mid": [s(0, 2.0)], "dear": [s(0, 10.0), s(1, 10.0)]},
    }
    return Dataset(
        name="hand",
        tasks=[Task(id=k, question=k, responses=v) for k, v in plan.items()],
    )


def test_single_models_average_samples_and_costs() -> None:
    by = {m.model: m for m in single_models(dataset())}
    assert by["cheap"].quality == pytest.approx(0.5) and by["cheap"].cost == pytest.approx(1.0)
    assert by["mid"].quality == pytest.approx(0.5) and by["mid"].cost == pytest.approx(2.0)
    # dear's t4 has two samples (0 and 1): the expected score of one call there is 0.5.
    assert by["dear"].quality == pytest.approx(3.5 / 4) and by["dear"].cost == pytest.approx(10)


def test_the_zero_router_mixes_single_models() -> None:
    hull = zero_router(dataset())
    assert [p.label for p in hull] == ["cheap", "dear"]  # mid costs more than cheap, no better
    assert aiq(hull) == pytest.approx((0.5 + 0.875) / 2)


def test_the_oracle_takes_the_cheapest_correct_model() -> None:
    result = oracle(dataset())
    assert result.choices == {"t1": "cheap", "t2": "cheap", "t3": "mid", "t4": "cheap"}
    # t4: nobody's first sample is right, so the cheapest model, wrong.
    assert result.quality == pytest.approx(3 / 4)
    assert result.cost == pytest.approx((1 + 1 + 2 + 1) / 4)


def test_a_dataset_without_costs_has_no_zero_router() -> None:
    d = Dataset(name="free", tasks=[Task(id="a", question="a", responses={"m": [Sample(score=1)]})])
    with pytest.raises(ValueError, match="records no cost"):
        zero_router(d)
