"""The MoT-cascade, GSM8K-join and RouteLLM adapters against the figures their READMEs give.

The data is read from the shared folder at run time (never copied); a missing folder skips.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from orch_reproductions.adapters.mot import canonical_number
from routers.eval import Dataset, DataUnavailable, load_dataset, split_of


@cache
def _load(name: str) -> Dataset:
    return load_dataset(name)


def dataset(name: str) -> Dataset:
    try:
        return _load(name)
    except DataUnavailable as exc:
        pytest.skip(str(exc))


def per_question_mean(ds: Dataset, model: str, *, skip_no_answer: bool = False) -> float:
    """Mean over the model's questions of its per-question mean score (the READMEs' figure)."""
    means = []
    for t in ds:
        samples = t.responses.get(model)
        if not samples or (skip_no_answer and model in t.meta.get("no_answer", [])):
            continue
        means.append(sum(s.score or 0.0 for s in samples) / len(samples))
    return sum(means) / len(means)


def test_mot_date_counts_and_accuracy() -> None:
    ds = dataset("mot-date")
    assert len(ds) == 369
    assert ds.groups() == ["date"]
    assert len(ds.models) == 17  # 5 gpt-3.5 + 8 gpt-4 + 4 llama variants
    t = ds.tasks[17]
    assert t.id == "date-17"
    assert len(t.responses["gpt-3.5-turbo[cot1]"]) == 20
    assert len(t.responses["gpt-3.5-turbo[cot1_40]"]) == 40
    assert len(t.responses["gpt-4[cot1]"]) == 3
    assert len(t.responses["gpt-4[greedy_cot1]"]) == 1
    assert all(s.text == "" for s in t.responses["gpt-4[cot1]"])
    assert per_question_mean(ds, "gpt-3.5-turbo[cot1]") == pytest.approx(0.736, abs=0.001)
    assert per_question_mean(ds, "gpt-4[cot1]") == pytest.approx(0.888, abs=0.001)
    assert per_question_mean(ds, "llama-2-13b[cot1]") == pytest.approx(0.500, abs=0.001)
    assert per_question_mean(ds, "llama-2-13b[pot1]") == pytest.approx(0.4424, abs=0.0005)
    assert not ds.copyable
    assert ds.prices["gpt-4[cot1]"].output_per_mtok == 60.0
    assert ds.prices["gpt-3.5-turbo[pot2]"].input_per_mtok == 1.5
    assert "llama-2-13b[cot2]" in ds.prices


def test_mot_gsm8k_counts_and_accuracy() -> None:
    ds = dataset("mot-gsm8k")
    assert len(ds) == 1319
    assert ds.models == [f"gpt-4[{v}]" for v in ("cot1", "cot2", "pot1", "pot2")] + [
        "llama-2-13b[pot1]",
        "llama-2-13b[pot2]",
    ]
    assert sum("llama-2-13b[pot1]" in t.responses for t in ds) == 400
    assert ds.tasks[0].gold == "18"
    assert ds.tasks[0].responses["gpt-4[cot1]"][0].answer == "18"
    assert per_question_mean(ds, "gpt-4[cot1]") == pytest.approx(0.9515, abs=0.0005)
    # summary.tsv leaves the questions with no recorded answer out of its means
    assert per_question_mean(ds, "gpt-4[pot1]", skip_no_answer=True) == pytest.approx(
        0.9481, abs=0.0005
    )
    assert per_question_mean(ds, "llama-2-13b[pot1]", skip_no_answer=True) == pytest.approx(
        0.2852, abs=0.0005
    )
    empty = [t for t in ds if "gpt-4[pot1]" in t.meta.get("no_answer", [])]
    assert empty
    assert [(s.answer, s.score) for s in empty[0].responses["gpt-4[pot1]"]] == [(None, 0.0)]


def test_gsm8k_joined() -> None:
    ds = dataset("gsm8k-joined")
    assert len(ds) == 1319
    assert len(ds.models) == 12
    expected = {
        "gpt-4[cot1,mot]": 0.951,
        "gpt-4-1106-preview[routellm]": 0.857,
        "mixtral-8x7b-instruct[routellm]": 0.638,
        "dolphin-2.9-llama3-8b[routerdc]": 0.698,
        "MetaMath-Mistral-7B[routerdc]": 0.696,
        "zephyr-7b-beta[routerdc]": 0.330,
        "llama-2-13b[pot1,mot]": 0.285,
    }
    for model, acc in expected.items():
        assert per_question_mean(ds, model) == pytest.approx(acc, abs=0.0015), model
    assert sum("llama-2-13b[pot1,mot]" in t.responses for t in ds) == 400
    first = ds.tasks[0]
    assert len(first.responses["Mistral-7B-v0.1[routerdc]"]) == 10
    assert sum(s.correct for s in first.responses["Mistral-7B-v0.1[routerdc]"]) == 8
    assert first.responses["gpt-4[cot1,mot]"][0].answer == "18"
    # qid 1309: MoT's gold (2180) differs from GSM8K's (2280); k is kept
    t1309 = ds.tasks[1309]
    assert t1309.gold == "2280"
    assert all(s.correct for s in t1309.responses["gpt-4[cot1,mot]"])
    assert all(m in ds.prices for m in ds.models)
    assert not ds.copyable


def test_routellm_gsm8k() -> None:
    ds = dataset("routellm-gsm8k")
    assert len(ds) == 1319
    assert ds.models == ["gpt-4-1106-preview", "mixtral-8x7b-instruct"]
    assert per_question_mean(ds, "gpt-4-1106-preview") == pytest.approx(0.857, abs=0.001)
    assert per_question_mean(ds, "mixtral-8x7b-instruct") == pytest.approx(0.638, abs=0.001)
    t = ds.tasks[0]
    assert t.gold == "18"
    assert "$18" in t.responses["gpt-4-1106-preview"][0].text
    assert ds.copyable
    assert "Apache-2.0" in ds.license
    cost = ds.cost("gpt-4-1106-preview", t.responses["gpt-4-1106-preview"][0])
    assert cost is not None
    assert 0 < cost < 0.05


def test_routellm_mmlu() -> None:
    ds = dataset("routellm-mmlu")
    assert len(ds) == 14042
    assert len(ds.groups()) == 57
    assert "anatomy" in ds.groups()
    assert per_question_mean(ds, "gpt-4-1106-preview") == pytest.approx(0.806, abs=0.001)
    assert per_question_mean(ds, "mixtral-8x7b-instruct") == pytest.approx(0.681, abs=0.001)
    assert ds.copyable


@pytest.mark.parametrize(
    "name", ["mot-date", "mot-gsm8k", "gsm8k-joined", "routellm-gsm8k", "routellm-mmlu"]
)
def test_split_is_deterministic_and_disjoint(name: str) -> None:
    ds = dataset(name)
    train, test = ds.split("train"), ds.split("test")
    ids_train, ids_test = {t.id for t in train}, {t.id for t in test}
    assert not ids_train & ids_test
    assert len(train) + len(test) == len(ds)
    assert 0.2 < len(train) / len(ds) < 0.4
    assert all(t.split == split_of(t.id) for t in ds)


def test_split_rule_is_fixed() -> None:
    assert [split_of(f"date-{i}") for i in range(3)] == [split_of(f"date-{i}") for i in range(3)]
    share = sum(split_of(f"x-{i}") == "train" for i in range(10_000)) / 10_000
    assert share == pytest.approx(0.3, abs=0.02)


def test_gsm8k_splits_agree_across_datasets() -> None:
    a, b = dataset("mot-gsm8k"), dataset("routellm-gsm8k")
    assert [(t.id, t.split) for t in a] == [(t.id, t.split) for t in b]


@pytest.mark.parametrize("name", ["mot-date", "gsm8k-joined", "routellm-gsm8k", "routellm-mmlu"])
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    small = dataset(name).select(limit=5)
    back = Dataset.load(small.save(tmp_path / "small.json"))
    assert back == small


def test_to_recorded_set_and_costs() -> None:
    ds = dataset("mot-date").select(limit=3)
    rs = ds.to_recorded_set()
    assert [i.id for i in rs.items] == ["date-0", "date-1", "date-2"]
    item = rs.items[0]
    assert item.answer == "05/01/2021"
    assert item.responses["gpt-3.5-turbo[cot1]"][0].text == "05/01/2021"
    sample = ds.tasks[0].responses["gpt-4[cot1]"][0]
    assert sample.input_tokens is not None
    assert sample.output_tokens is not None
    cost = ds.cost("gpt-4[cot1]", sample)
    assert cost == pytest.approx((sample.input_tokens * 30 + sample.output_tokens * 60) / 1e6)


def test_canonical_number() -> None:
    assert canonical_number(18.0) == "18"
    assert canonical_number(2.5) == "2.5"
    assert canonical_number(1 / 3) == "0.333333"
    assert canonical_number("20/3") == "20/3"
    assert canonical_number(None) is None
