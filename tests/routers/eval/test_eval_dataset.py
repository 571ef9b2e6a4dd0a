"""The evaluation dataset schema: validation, views, cost, file round trip, and the form the
recorded model client serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry, RecordedClient
from agents.models._registry import ProviderConfig
from routers.eval import (
    Dataset,
    DatasetError,
    DataUnavailable,
    Sample,
    Task,
    data_root,
    load_dataset,
    merge,
)


def tiny() -> Dataset:
    return Dataset(
        name="tiny",
        source="made here",
        license="Apache-2.0",
        copyable=True,
        prices={"cheap": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        tasks=[
            Task(
                id="t1",
                question="What is 2+2?",
                gold="4",
                split="train",
                group="math",
                responses={
                    "cheap": [
                        Sample(text="4", answer="4", score=1, input_tokens=10, output_tokens=5),
                        Sample(text="5", answer="5", score=0, input_tokens=10, output_tokens=5),
                    ],
                    "dear": [Sample(text="4", answer="4", score=1, cost_usd=0.01)],
                },
            ),
            Task(id="t2", question="Capital of France?", gold="Paris", group="geo"),
        ],
    )


def test_views_split_group_and_models() -> None:
    d = tiny()
    assert d.models == ["cheap", "dear"]
    assert [t.id for t in d.split("train")] == ["t1"]
    assert [t.id for t in d.split("test")] == ["t2"]  # the default split
    assert d.groups() == ["geo", "math"]
    assert len(d.select(group="geo")) == 1 and len(d.select(limit=1)) == 1
    assert [t.id for t in d.complete()] == ["t1"]  # t2 has no responses at all


def test_cost_is_recorded_or_priced_from_tokens() -> None:
    d = tiny()
    cheap, _ = d.tasks[0].responses["cheap"]
    assert d.cost("cheap", cheap) == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert d.cost("dear", d.tasks[0].responses["dear"][0]) == 0.01
    assert d.cost("unpriced", Sample(input_tokens=1, output_tokens=1)) is None


def test_bad_data_is_refused_with_the_field_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task ids must be unique"):
        Dataset(name="d", tasks=[Task(id="a", question="q"), Task(id="a", question="r")])
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Sample(score=1.5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "orch.eval-dataset/1", "name": "x", "tasks": [{}]}))
    with pytest.raises(DatasetError, match=r"malformed at tasks\.0\.id"):
        Dataset.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "orch.recorded-responses/1", "items": []}))
    with pytest.raises(DatasetError, match="is not an evaluation dataset"):
        Dataset.load(other)
    with pytest.raises(DatasetError, match="cannot read dataset"):
        Dataset.load(tmp_path / "missing.json")


def test_a_file_round_trips_and_loads_by_path(tmp_path: Path) -> None:
    path = tiny().save(tmp_path / "tiny.json")
    assert Dataset.load(path) == tiny()
    assert load_dataset(str(path)) == tiny()


async def test_the_recorded_client_serves_the_dataset() -> None:
    recorded = tiny().to_recorded_set()
    registry = ModelRegistry.from_dict(
        {
            "providers": {"rec": {"kind": "recorded", "options": {"data": "-"}}},
            "models": {"cheap": {"provider": "rec", "name": "cheap"}},
        }
    )
    client = RecordedClient("rec", ProviderConfig(kind="recorded"), data=recorded)
    hub = ModelHub(registry, clients={"rec": client})
    ask = ChatRequest(
        model="cheap", messages=[ChatMessage(role="user", content="Q: What is 2+2?")], sample=1
    )
    reply = await hub.complete(ask)
    assert reply.text == "5" and reply.usage.input_tokens == 10
    assert recorded.items[0].responses["cheap"][0].cost_usd == pytest.approx(2e-5)


def test_merge_keeps_every_task_and_the_strictest_license() -> None:
    closed = Dataset(name="closed", license="none stated", tasks=[Task(id="x", question="?")])
    both = merge("both", [tiny(), closed])
    assert [t.id for t in both] == ["t1", "t2", "x"]
    assert not both.copyable and "cheap" in both.prices


def test_unknown_and_absent_datasets_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetError, match="no dataset named 'nope'"):
        load_dataset("nope")
    monkeypatch.setenv("ORCH_EVAL_DATA", str(tmp_path))
    assert data_root() == tmp_path
    from routers.eval._sources import ADAPTERS, adapter

    @adapter("test-only-absent", "no-such-folder")
    def absent(path: Path) -> Dataset:
        raise AssertionError("never called")

    try:
        with pytest.raises(DataUnavailable, match="set ORCH_EVAL_DATA"):
            load_dataset("test-only-absent")
    finally:
        ADAPTERS.pop("test-only-absent")
