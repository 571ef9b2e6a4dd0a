"""The routerbench, routerarena and clinc150 adapters against the shared recordings.

Figures come from each folder's README; every test skips when the data is not on this
machine (``DataUnavailable``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from example_modules import dataset_or_skip

from orch_reproductions.adapters.routerbench import FILES, Report, _strings, read_routerbench
from orch_reproductions.adapters.routerbench import routerbench as routerbench_adapter
from routers.eval import Dataset, DatasetError, data_root, load_dataset, split_of, unit_hash

GPT4 = "gpt-4-1106-preview"
GPT35 = "gpt-3.5-turbo-1106"
MIXTRAL = "mistralai/mixtral-8x7b-chat"
MISTRAL = "mistralai/mistral-7b-chat"
YI = "zero-one-ai/Yi-34B-Chat"
HAIKU = "claude-3-haiku-20240307"
GEMINI = "gemini-2.0-flash-001"


def _load(name: str) -> Dataset:
    # Load time is not asserted here (the suite has no timed assertions).
    return dataset_or_skip(name)


@pytest.fixture(scope="module")
def routerbench() -> Dataset:
    return _load("routerbench")


@pytest.fixture(scope="module")
def rb_report() -> Report:
    folder = data_root() / routerbench_adapter.folder
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here")
    return read_routerbench(folder)[1]


@pytest.fixture(scope="module")
def arena() -> Dataset:
    return _load("routerarena")


@pytest.fixture(scope="module")
def clinc() -> Dataset:
    return _load("clinc150")


def _accuracy(ds: Dataset, model: str) -> float:
    scores = [s.score for t in ds for s in t.responses.get(model, []) if s.score is not None]
    return sum(scores) / len(scores)


def _roundtrip(ds: Dataset, tmp_path: Path) -> None:
    small = ds.model_copy(update={"tasks": ds.tasks[:3] + ds.tasks[-3:]})
    back = Dataset.load(small.save(tmp_path / f"{ds.name}.json"))
    assert back == small
    assert (back.source, back.license, back.copyable) == (ds.source, ds.license, ds.copyable)


# -- routerbench ---------------------------------------------------------------------------


def test_routerbench_rows_per_file_and_tasks(routerbench: Dataset, rb_report: Report) -> None:
    ds = routerbench
    rows = {f.file: f.rows for f in rb_report.files}
    assert rows == {
        "arc_challenge_train.csv": 1039,
        "arc_challenge_test.csv": 445,
        "winograde_train.csv": 887,
        "winograde_test.csv": 380,
        "mbpp_train.csv": 299,
        "mbpp_test.csv": 128,
    }
    # every CSV row is in exactly one task; 8 ARC ids had two rows in one file (merged)
    assert sum(len(t.meta["rows"]) for t in ds) == sum(rows.values()) == 3178
    tasks = Counter((t.group, t.split) for t in ds)
    assert tasks == {
        ("arc-challenge", "train"): 1032,
        ("arc-challenge", "test"): 444,
        ("winogrande", "train"): 887,
        ("winogrande", "test"): 380,
        ("mbpp", "train"): 299,
        ("mbpp", "test"): 128,
    }
    assert {f.file: len(f.merged) for f in rb_report.files if f.merged} == {
        "arc_challenge_train.csv": 7,
        "arc_challenge_test.csv": 1,
    }
    assert len(ds.models) == 11
    assert ds.groups() == ["arc-challenge", "mbpp", "winogrande"]


def test_routerbench_missing_cells_are_counted_not_sampled(
    routerbench: Dataset, rb_report: Report
) -> None:
    ds = routerbench
    assert rb_report.missing_cells == 154
    assert sum(rb_report.file("arc_challenge_test.csv").missing.values()) == 62
    assert sum(rb_report.file("arc_challenge_train.csv").missing.values()) == 92
    assert all(not f.missing for f in rb_report.files if not f.file.startswith("arc"))
    # after merging, only the 6 ids split across train and test lack models (11 cells each)
    assert sum(len(t.meta["unscored"]) for t in ds) == 66
    for t in ds:
        assert set(t.responses).isdisjoint(t.meta["unscored"])
        assert all(len(s) == 1 and s[0].score in (0.0, 1.0) for s in t.responses.values())


def test_routerbench_accuracies_match_readme(routerbench: Dataset) -> None:
    test = routerbench.split("test")
    arc, wino = test.select(group="arc-challenge"), test.select(group="winogrande")
    expected_arc = {GPT4: 0.957, "claude-v1": 0.920, YI: 0.918, MIXTRAL: 0.863}
    expected_arc |= {GPT35: 0.842, MISTRAL: 0.670}
    for model, acc in expected_arc.items():
        assert _accuracy(arc, model) == pytest.approx(acc, abs=0.0015), model
    for model, acc in {GPT4: 0.855, YI: 0.742, MIXTRAL: 0.684, GPT35: 0.663}.items():
        assert _accuracy(wino, model) == pytest.approx(acc, abs=0.0015), model


def test_routerbench_costs_recorded_per_call(routerbench: Dataset) -> None:
    ds = routerbench
    assert all(s.cost_usd is not None for t in ds for ss in t.responses.values() for s in ss)
    arc = ds.select(group="arc-challenge")

    def mean_cost(part: Dataset, model: str) -> float:
        costs = [s.cost_usd or 0.0 for t in part for s in t.responses.get(model, [])]
        return sum(costs) / len(costs)

    for model, usd in {GPT4: 0.0052, MIXTRAL: 0.00031, MISTRAL: 0.00010}.items():
        assert mean_cost(arc, model) == pytest.approx(usd, rel=0.05), model
    for group in ds.groups():
        part = ds.select(group=group)
        for cheap in (GPT35, MIXTRAL):
            assert 9.5 < mean_cost(part, GPT4) / mean_cost(part, cheap) < 60, (group, cheap)
    rs = ds.select(limit=5).to_recorded_set()
    first = ds.tasks[0]
    assert rs.items[0].id == first.id
    assert rs.items[0].responses[GPT4][0].cost_usd == first.responses[GPT4][0].cost_usd


def test_routerbench_texts_decoded_and_oracle(routerbench: Dataset) -> None:
    ds = routerbench
    task = next(t for t in ds if t.meta["sample_id"] == "arc-challenge.test.1")
    assert task.id == "test/arc-challenge.test.1"
    assert task.question.startswith("George wants to warm his hands")
    assert task.responses[GPT4][0].text == "A"
    assert task.responses["meta/llama-2-70b-chat"][0].text == "A\n"
    assert task.meta["oracle_model_to_route_to"] == MISTRAL
    assert not any(t.question.startswith("['") for t in ds)
    assert not any(s.text.startswith("['") for t in ds for ss in t.responses.values() for s in ss)
    for t in ds:  # the source's rule: the cheapest model graded 1
        right = {m: ss[0].cost_usd for m, ss in t.responses.items() if ss[0].correct}
        want = min(right, key=lambda m: right[m] or 0.0) if right else "no_model_correct"
        assert t.meta["oracle_model_to_route_to"] == want, t.id
    merged = next(t for t in ds if t.meta["sample_id"] == "arc-challenge.val.172")
    assert merged.split == "test" and len(merged.responses) == 11
    assert merged.meta["rows"] == [1640, 1641]


def test_routerbench_splits_from_files_and_disjoint(
    routerbench: Dataset, rb_report: Report
) -> None:
    ds = routerbench
    train, test = ds.split("train"), ds.split("test")
    assert len(train) + len(test) == len(ds) and not ds.split("val")
    assert {t.id for t in train}.isdisjoint(t.id for t in test)
    shared = {t.meta["sample_id"] for t in train} & {t.meta["sample_id"] for t in test}
    assert shared == set(rb_report.cross_split) and len(shared) == 6
    flagged = {t.meta["sample_id"] for t in ds if t.meta.get("also_in_split")}
    assert flagged == shared
    assert all((s == "train") == name.endswith("_train.csv") for name, (_, s) in FILES.items())


def test_routerbench_license_and_roundtrip(routerbench: Dataset, tmp_path: Path) -> None:
    ds = routerbench
    assert ds.copyable is False and "none stated" in ds.license and "RouterDC" in ds.source
    _roundtrip(ds, tmp_path)


def test_routerbench_decodes_literals_without_eval(tmp_path: Path) -> None:
    where = tmp_path / "x.csv"
    assert _strings("['a', \"b\\n\"]", where, 1, "prompt") == ["a", "b\n"]
    for bad in ("__import__('os').system('true')", "['a', 1]", "'a'", "[unclosed"):
        with pytest.raises(DatasetError, match=r"x\.csv.*'prompt'.*fix:"):
            _strings(bad, where, 3, "prompt")


# -- routerarena ---------------------------------------------------------------------------


def test_routerarena_counts_and_groups(arena: Dataset) -> None:
    ds = arena
    assert len(ds) == 809
    assert ds.models == [HAIKU, GEMINI]
    assert all(set(t.responses) == {HAIKU, GEMINI} for t in ds)
    assert sum(t.meta["metric"] == "mcq_accuracy" for t in ds) == 565
    assert len(ds.groups()) == 78
    by_id = {t.id: t for t in ds}
    assert by_id["AIME_112"].group == "AIME" and by_id["AIME_112"].gold == "610"
    assert {t.group for t in ds if t.id.startswith("MMLUPro_law_")} == {"MMLUPro_law"}
    assert all(t.gold is not None for t in ds)


def test_routerarena_scores_and_costs_match_readme(arena: Dataset) -> None:
    ds = arena
    for model, score, usd in ((HAIKU, 0.523, 0.142), (GEMINI, 0.690, 0.038)):
        samples = [t.responses[model][0] for t in ds]
        assert sum(s.score or 0.0 for s in samples) / len(ds) == pytest.approx(score, abs=0.001)
        assert sum(s.cost_usd or 0.0 for s in samples) == pytest.approx(usd, abs=0.001)
    calls = [(m, s) for t in ds for m, ss in t.responses.items() for s in ss]
    assert any(s.score is not None and 0 < s.score < 1 for _, s in calls)  # METEOR
    # every call has its recorded cost, and it is the tokens at the model_cost.json prices
    assert set(ds.prices) == {HAIKU, GEMINI}
    assert ds.prices[HAIKU].input_per_mtok == 0.25
    for m, s in calls:
        assert s.cost_usd is not None and s.input_tokens and s.output_tokens is not None
        tokens_cost = ds.cost(m, s.model_copy(update={"cost_usd": None}))
        assert tokens_cost == pytest.approx(s.cost_usd, abs=1e-12)
    clamped = [t for t in ds if "raw_scores" in t.meta]
    assert [t.id for t in clamped] == ["NarrativeQA_4102"]
    assert clamped[0].meta["raw_scores"][HAIKU] < 0
    assert clamped[0].responses[HAIKU][0].score == 0.0
    rs = ds.to_recorded_set()
    assert len(rs.items) == 809 and rs.license == ds.license


def test_routerarena_hash_split_deterministic_and_disjoint(arena: Dataset) -> None:
    ds = arena
    train, test = ds.split("train"), ds.split("test")
    assert len(train) + len(test) == len(ds)
    assert {t.id for t in train}.isdisjoint(t.id for t in test)
    assert 0.25 < len(train) / len(ds) < 0.35
    assert all(t.split == split_of(t.id, 0.3) for t in ds)
    again = load_dataset("routerarena")
    assert [t.split for t in again] == [t.split for t in ds]


def test_routerarena_license_and_roundtrip(arena: Dataset, tmp_path: Path) -> None:
    ds = arena
    assert ds.copyable is True and ds.license.startswith("Apache-2.0")
    _roundtrip(ds, tmp_path)


def test_hash_split_is_stable_and_validates() -> None:
    # fixed values: sha256-based, so the same on every machine and Python process
    assert unit_hash("GSM8K_12") == pytest.approx(0.6926837975858657, abs=1e-15)
    assert unit_hash("x", "salt") == pytest.approx(0.7888071314058356, abs=1e-15)
    assert split_of("GSM8K_12") == "test"
    assert split_of("GSM8K_12", 0.7) == "train"
    assert split_of("GSM8K_12", 0.5, val_fraction=0.3) == "val"
    ids = [f"task-{i}" for i in range(2000)]
    shares = Counter(split_of(i, 0.3, val_fraction=0.1) for i in ids)
    assert abs(shares["train"] / 2000 - 0.3) < 0.04 and abs(shares["val"] / 2000 - 0.1) < 0.03
    for train, val in ((-0.1, 0.0), (0.8, 0.3)):
        with pytest.raises(ValueError, match="fix:"):
            split_of("a", train, val_fraction=val)


# -- clinc150 ------------------------------------------------------------------------------


def test_clinc_counts_and_splits(clinc: Dataset) -> None:
    ds = clinc
    parts = Counter(t.id.split("/")[0] for t in ds)
    assert parts == {
        "train": 15000,
        "val": 3000,
        "test": 4500,
        "oos_train": 100,
        "oos_val": 100,
        "oos_test": 1000,
    }
    assert (len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))) == (
        15100,
        3100,
        5500,
    )
    test = ds.split("test")
    assert sum(t.gold == "oos" for t in test) == 1000
    assert all((t.gold == "oos") == (t.group == "oos") for t in ds)
    assert all(t.id.startswith("oos_") == (t.gold == "oos") for t in ds)


def test_clinc_intents_domains_options(clinc: Dataset) -> None:
    ds = clinc
    options = ds.tasks[0].options
    assert len(options) == 151 and options[-1] == "oos" and len(set(options)) == 151
    assert all(t.options == options and t.gold in options for t in ds)
    assert len(ds.groups()) == 11 and "oos" in ds.groups() and "banking" in ds.groups()
    per_domain = {g: {t.gold for t in ds.select(group=g)} for g in ds.groups() if g != "oos"}
    assert all(len(intents) == 15 for intents in per_domain.values())
    first = ds.tasks[0]
    assert (first.id, first.gold, first.group) == ("train/0", "translate", "travel")
    assert ds.models == [] and all(not t.responses for t in ds)


def test_clinc_license_roundtrip_and_recorded_set(clinc: Dataset, tmp_path: Path) -> None:
    ds = clinc
    assert ds.copyable is True and ds.license == "CC BY 3.0" and "oos-eval" in ds.source
    _roundtrip(ds, tmp_path)
    rs = ds.select(group="oos", limit=4).to_recorded_set()
    assert [i.answer for i in rs.items] == ["oos"] * 4
    assert all(i.responses == {} for i in rs.items)
