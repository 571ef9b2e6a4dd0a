"""The router examples: each runs offline, prints its decisions, leaves verifiable runs, and
every run replays clean (same root hash, no effect called)."""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from example_modules import load_example

from orch._loader import load_pipeline
from orch._replay import areplay, recorded_origin
from traces._open import open_store
from traces._verify import verify_store


def load(name: str) -> ModuleType:
    return load_example(name)


CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "tcar_clinc",
        ["--limit", "24", "--show", "2"],
        ["domain accuracy", "via offline", "router state: orch state sha256:"],
    ),
    ("acar_sigma", [], ["σ=", "agreement-but-wrong", "modes single"]),
    ("amro_routing", [], ["learned from 10 routes", "task weights", "orch state sha256:"]),
    ("orch_panel", [], ["feedback applied", "panel [", "orch state sha256:"]),
    ("baselines", [], ["majority vote", "oracle", "kNN index state: orch state"]),
]


@pytest.mark.parametrize(("example", "argv", "expected"), CASES, ids=[c[0] for c in CASES])
def test_example_runs_verifies_and_replays_clean(
    example: str,
    argv: list[str],
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = load(example)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    code = module.main(argv) if argv else module.main()
    assert code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, (text, out[-2000:])
    with open_store() as store:
        report = verify_store(store)
        assert report.ok, report.problems[:3]
        run_ids = store.run_ids()
        assert run_ids
        services: dict[str, Any] = module.services() if hasattr(module, "services") else {}
        for run_id in run_ids:
            origin = recorded_origin(store, run_id)
            assert origin is not None, f"run {run_id} does not say which pipeline it ran"
            pipeline = load_pipeline(origin)
            # The learning/feedback pipelines need no services; the serving ones do.
            replayed = anyio.run(
                functools.partial(areplay, pipeline, run_id, store, services=services)
            )
            assert replayed.clean, (run_id, replayed.first_divergence)


def test_state_history_of_the_amro_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from routers._state import state_history

    module = load("amro_routing")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert module.main() == 0
    version = capsys.readouterr().out.strip().split("orch state ")[-1].strip()
    with open_store() as store:
        history = state_history(store, version)
    assert len(history) == 4  # initial + one version per full buffer of 10 (30 questions)
    assert history[-1].state is not None and history[-1].state.parent is None
    assert all(h.state is not None for h in history)


def test_the_tcar_example_routes_with_its_stored_calibrated_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from routers import IntentClassifier, load_state
    from traces import load_run_view

    module = load("tcar_clinc")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    assert module.main(["--limit", "12", "--show", "0"]) == 0
    out = capsys.readouterr().out
    version = out.split("router state: orch state ")[1].split()[0]
    with open_store() as store:
        state = load_state(store, version, IntentClassifier)
        # Calibrated on the validation split: a derived version with a decline threshold.
        assert state.parent is not None and state.decline_below is not None
        assert state.labels == sorted(module.dataset()["domains"])
        versions = set()
        for run_id in store.run_ids():
            view = load_run_view(store, run_id)
            for step in view.steps.values():
                if step.record.agent.name == "tcar-router":
                    versions |= {d.state_version for d in step.decisions}
    assert versions == {version}
