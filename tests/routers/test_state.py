"""Router state versions: save and load, history through recorded feedback steps, clear
errors, and ``orch show <version>``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orch import PipelineBuilder, arun
from orch.cli import app
from routers import EMAState, Observation, PheromoneState, ema_feedback
from routers._state import is_state, load_state, save_state, state_history
from traces import MemoryStore
from traces._dirstore import DirectoryStore


def test_save_and_load_roundtrip() -> None:
    store = MemoryStore()
    state = EMAState()
    version = save_state(store, state)
    assert version == state.version and is_state(store, version)
    assert load_state(store, version) == state
    assert load_state(store, version, EMAState) == state


def test_load_errors() -> None:
    store = MemoryStore()
    other = store.put_value({"hello": "world"})
    with pytest.raises(LookupError, match="not in this store"):
        load_state(store, "sha256:" + "2" * 64)
    with pytest.raises(ValueError, match="not router state"):
        load_state(store, other)
    version = save_state(store, EMAState())
    with pytest.raises(ValueError, match="is a EMAState, not a PheromoneState"):
        load_state(store, version, PheromoneState)
    assert not is_state(store, other)
    with pytest.raises(ValueError, match="not a registered router state format"):
        save_state(store, Observation(agent="a", ok=True, cost_usd=0.0))


async def feed(store: MemoryStore | DirectoryStore, version: str, quality: float) -> str:
    p = PipelineBuilder("feedback")
    p.node(
        "f",
        ema_feedback,
        state=p.input("state", str),
        observations=p.input("observations", list[Observation]),
    )
    obs = [Observation(agent="a", ok=True, latency_ms=100.0, cost_usd=0.001, quality=quality)]
    result = await arun(
        p.build(), {"state": version, "observations": [o.model_dump() for o in obs]}, store=store
    )
    assert result.ok, result.error
    new: EMAState = result.outputs["f"]
    return new.version


async def test_history_through_feedback_steps() -> None:
    store = MemoryStore()
    v0 = save_state(store, EMAState())
    v1 = await feed(store, v0, 1.0)
    v2 = await feed(store, v1, 0.0)
    v3 = await feed(store, v2, 1.0)
    history = state_history(store, v3)
    assert [h.version for h in history] == [v3, v2, v1, v0]
    assert history[-1].state is not None and history[-1].state.parent is None
    assert "EMA state, 1 agents" in history[0].summary
    # the same batch on the same version is the same version (deterministic)
    assert await feed(store, v0, 1.0) == v1


def test_history_stops_at_a_version_not_stored() -> None:
    store = MemoryStore()
    orphan = EMAState(parent="sha256:" + "3" * 64)
    version = save_state(store, orphan)
    history = state_history(store, version)
    assert (
        len(history) == 2 and history[1].state is None and "not in this store" in history[1].summary
    )


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_STORE", raising=False)
    return tmp_path / ".orch"


async def test_orch_state_prints_state_history(store_dir: Path) -> None:
    store = DirectoryStore(store_dir)
    v0 = save_state(store, EMAState())
    v1 = await feed(store, v0, 1.0)
    v2 = await feed(store, v1, 0.5)
    cli = CliRunner()
    shown = cli.invoke(app, ["state", v2])
    assert shown.exit_code == 0, shown.output
    assert "router state history (3 versions" in shown.output and v2[:19] in shown.output
    as_json = cli.invoke(app, ["state", v2, "--json"])
    assert as_json.exit_code == 0
    rows = json.loads(as_json.output)
    assert [r["version"] for r in rows] == [v2, v1, v0]
    assert rows[0]["parent"] == v1 and rows[-1]["parent"] is None
    assert rows[0]["format"] == "orch.ema-state/1"


def test_orch_state_refuses_a_key_that_is_not_state(store_dir: Path) -> None:
    store = DirectoryStore(store_dir)
    key = store.put_value({"not": "state"})
    result = CliRunner().invoke(app, ["state", key])
    assert result.exit_code != 0
    assert "not router state" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["state", "sha256:" + "4" * 64])
    assert missing.exit_code != 0 and "not in this store" in missing.output


async def test_verify_rehashes_the_state_a_decision_read() -> None:
    from agents.models import ModelHub, ModelRegistry, ScriptedClient
    from routers import amro_router
    from traces import verify_run

    store = MemoryStore()
    version = save_state(store, PheromoneState())
    p = PipelineBuilder("amro")
    p.node(
        "r",
        amro_router.with_config(
            layers=[[{"name": "m", "model": "m"}]],
            intent_examples=[{"text": "anything at all", "task": "general"}],
        ),
        question=p.input("question", str),
        state=p.input("state", str),
    )
    registry = ModelRegistry.from_dict(
        {"providers": {"s": {"kind": "simulated"}}, "models": {"m": {"provider": "s", "name": "m"}}}
    )
    hub = ModelHub(registry, clients={"s": ScriptedClient(lambda r, m: "A")})
    result = await arun(
        p.build(), {"question": "q", "state": version}, store=store, services={"models": hub}
    )
    assert result.ok, result.error
    assert verify_run(store, result.run_id).ok
    store._tamper(version, store.get(version).replace(b"amro", b"AMRO"))
    report = verify_run(store, result.run_id)
    assert not report.ok
    assert any(
        "state version read by decision #0 of step 'r'" in p.subject for p in report.problems
    )
