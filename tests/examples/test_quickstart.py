"""The offline quickstart: routes as designed, deterministic, and leaves verifiable runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import orch
from orch.testing import assert_order_independent
from traces import MemoryStore
from traces.runview import load_run_view
from traces.verify import verify_run

PATH = Path(__file__).parents[2] / "examples" / "quickstart.py"


@pytest.fixture(scope="module")
def quickstart():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("quickstart_example", PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["quickstart_example"] = module
    spec.loader.exec_module(module)
    return module


def test_unanimous_question_skips_judge(quickstart) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    result = orch.run(quickstart.pipeline, {"question": "What is 17 * 3?"}, store=store, seed=7)
    assert result.ok
    assert result.outputs["answer"].answer == "51"
    assert result.outputs["answer"].route == "agree"
    view = load_run_view(store, result.run_id)
    judge = view.steps["judge"].record
    assert judge.status == "skipped"
    assert "selected ['agree'], not 'disagree'" in (judge.reason or "")
    vote = view.steps["vote"].decisions[0]
    assert vote.chosen == ["agree"]
    assert vote.scores["sigma"] == 0.0


def test_disagreement_goes_to_judge(quickstart) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    result = orch.run(
        quickstart.pipeline, {"question": "What is the capital of Australia?"}, store=store, seed=7
    )
    final = result.outputs["answer"]
    assert final.route == "judge"
    assert final.sigma == 1.0
    assert final.answer == "Canberra"  # alpha is the most confident model
    view = load_run_view(store, result.run_id)
    verdict = view.steps["judge"].decisions[0]
    assert verdict.chosen == ["Canberra"]
    assert set(verdict.candidates) == {"Canberra", "Sydney", "Melbourne"}
    assert verify_run(store, result.run_id).ok


async def test_quickstart_order_independent(quickstart) -> None:  # type: ignore[no-untyped-def]
    await assert_order_independent(
        quickstart.pipeline, {"question": "How many sides has a hexagon?"}, seed=7, shuffles=4
    )


def test_main_prints_summary(quickstart, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert quickstart.main() == 0
    out = capsys.readouterr().out
    assert "Canberra" in out and "orch verify" in out
    assert (tmp_path / ".orch" / "runs").is_dir()
