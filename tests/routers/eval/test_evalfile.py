"""The evaluation file: a checked round trip, clear errors for what is not one, and the
references computed from a dataset."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from routers.eval import Dataset, DatasetError, Sample, Task
from routers.eval._evalfile import EvalConfig, EvalFile, References, load, save


def tiny(costs: bool = True) -> Dataset:
    def sample(right: bool, cost: float) -> Sample:
        return Sample(
            text="A" if right else "B", score=float(right), cost_usd=cost if costs else None
        )

    return Dataset(
        name="tiny",
        tasks=[
            Task(
                id=f"t{i}",
                question=f"Question {i}?",
                gold="A",
                responses={"cheap": [sample(i % 2 == 0, 0.001)], "dear": [sample(True, 0.01)]},
            )
            for i in range(4)
        ],
    )


def test_references_of_a_dataset() -> None:
    refs = References.of(tiny())
    assert [(p.label, p.quality) for p in refs.single_models] == [("cheap", 0.5), ("dear", 1.0)]
    assert [p.label for p in refs.zero_router] == ["cheap", "dear"]
    assert refs.cost_range == pytest.approx((0.001, 0.01))
    assert refs.zero_router_aiq == pytest.approx(0.75)  # the segment from 0.5 to 1.0
    assert refs.oracle is not None and refs.oracle.quality == 1.0
    assert refs.oracle.cost == pytest.approx((0.001 * 2 + 0.01 * 2) / 4)
    assert refs.note is None


def test_references_without_costs_say_why_there_is_no_hull() -> None:
    refs = References.of(tiny(costs=False))
    assert refs.zero_router == [] and refs.zero_router_aiq is None and refs.note


def test_round_trip_atomic_and_shared_like_any_file(tmp_path: Path) -> None:
    ev = EvalFile(
        title="t", dataset="tiny", split="test", tasks=4, references=References.of(tiny())
    )
    old = os.umask(0o022)
    try:
        path = save(ev, tmp_path / "sub" / "ev.json")
    finally:
        os.umask(old)
    assert load(path) == ev
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["ev.json"]  # no temporary left


def test_repeated_labels_are_refused(tmp_path: Path) -> None:
    twice = [EvalConfig(label="x", router="r"), EvalConfig(label="x", router="r")]
    ev = EvalFile(title="t", dataset="d", split="test", tasks=0, configs=twice)
    with pytest.raises(ValueError, match="repeated: x"):
        save(ev, tmp_path / "ev.json")
    assert not (tmp_path / "ev.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"{not json", "is not JSON"),
        (b'{"format": "orch.eval-dataset/1"}', "is not an evaluation file"),
        (b'{"format": "orch.eval-report/1", "title": "t"}', "dataset: Field required"),
    ],
)
def test_load_names_the_file_and_the_problem(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "ev.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)
