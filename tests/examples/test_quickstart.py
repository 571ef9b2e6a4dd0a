"""The offline quickstart: recorded and simulated models, routes as designed, deterministic,
replays clean, and leaves verifiable runs."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from example_modules import load_example

import orch
from orch._replay import areplay
from orch.testing import assert_order_independent
from traces import MemoryStore
from traces._runview import load_run_view
from traces._verify import verify_run


@pytest.fixture(scope="module")
def quickstart() -> ModuleType:
    return load_example("quickstart", "quickstart_example")


@pytest.fixture(scope="module")
def runs(quickstart: ModuleType) -> tuple[MemoryStore, list[tuple[dict, orch.RunResult]]]:  # type: ignore[type-arg]
    store = MemoryStore()
    out = []
    for item in quickstart.items():
        result = orch.run(
            quickstart.pipeline,
            {"question": item["question"]},
            store=store,
            seed=7,
            services=quickstart.services(),
        )
        assert result.ok, result.error
        out.append((item, result))
    return store, out


def test_routes_follow_agreement(quickstart: ModuleType, runs: tuple) -> None:  # type: ignore[type-arg]
    store, results = runs
    routes = set()
    for _item, result in results:
        picks = {result.steps[m].output.answer for m in quickstart.MODELS}
        final = result.outputs["answer"]
        routes.add(final.route)
        view = load_run_view(store, result.run_id)
        judge = view.steps["judge"].record
        if len(picks) == 1:
            assert final.route == "agree" and final.sigma == 0.0
            assert judge.status == "skipped"
            assert "selected ['agree'], not 'disagree'" in (judge.reason or "")
        else:
            assert final.route == "judge" and final.sigma > 0
            verdict = view.steps["judge"].decisions[0]
            assert set(verdict.candidates) <= picks
            assert verdict.chosen == [final.answer]
        assert len(view.steps["haiku"].effects) == 1
    assert routes == {"agree", "judge"}  # the sample exercises both paths


def test_recorded_answers_and_costs(quickstart: ModuleType, runs: tuple) -> None:  # type: ignore[type-arg]
    store, results = runs
    item, result = results[0]
    view = load_run_view(store, result.run_id)
    haiku = view.steps["haiku"].effects[0]
    recorded = item["responses"]["claude-3-haiku-20240307"][0]
    assert haiku.usage == {
        "input_tokens": recorded["input_tokens"],
        "output_tokens": recorded["output_tokens"],
    }
    price = (recorded["input_tokens"] * 0.25 + recorded["output_tokens"] * 1.25) / 1e6
    assert haiku.cost_usd == pytest.approx(price)
    assert view.cost_usd > 0
    accuracy = sum(r.outputs["answer"].answer == i["answer"] for i, r in results) / len(results)
    assert accuracy >= 0.6  # the ensemble is useful on this sample (24/30 when written)


async def test_every_quickstart_run_replays_clean(quickstart: ModuleType, runs: tuple) -> None:  # type: ignore[type-arg]
    store, results = runs
    for _item, result in results:
        report = await areplay(
            quickstart.pipeline, result.run_id, store, services=quickstart.services()
        )
        assert report.clean, report.first_divergence
        assert verify_run(store, report.result.run_id).ok


async def test_quickstart_order_independent(quickstart: ModuleType) -> None:
    item = quickstart.items()[2]
    await assert_order_independent(
        quickstart.pipeline,
        {"question": item["question"]},
        seed=7,
        shuffles=3,
        services=quickstart.services(),
    )


def test_option_letter_extraction(quickstart: ModuleType) -> None:
    assert quickstart.option_letter("so \\boxed{C} ... finally \\boxed{ D }") == "D"
    assert quickstart.option_letter("The answer is (B).") == "B"
    assert quickstart.option_letter("no idea") == "?"


def test_main_prints_summary(
    quickstart: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert quickstart.main() == 0
    out = capsys.readouterr().out
    assert "accuracy: haiku" in out and "ensemble" in out and "orch replay" in out
    assert len(list((tmp_path / ".orch" / "runs").iterdir())) == 30
