"""Plugins: discovery through entry points, use by name, broken packages named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

import orch
from orch import PipelineBuilder, PipelineValidationError, PluginError
from orch._plugins import list_plugins, load_agent
from traces import MemoryStore


class Text(BaseModel):
    text: str


def test_list_plugins_shows_ok_and_broken(plugin_site: Path) -> None:
    infos = {i.name: i for i in list_plugins()}
    assert infos["shout"].ok
    assert infos["shout"].package == "orch-demo-plugin"
    assert infos["shout"].version == "0.3.1"
    assert infos["shout"].agent == "shout@2.0"
    assert infos["coin-router"].group == "orch.routers"
    assert infos["coin-router"].ok
    broken = infos["broken"]
    assert not broken.ok
    assert "orch-broken-plugin" in broken.error
    assert "a_dependency_that_is_not_installed" in broken.error


def test_pipeline_uses_plugin_agent_by_name(plugin_site: Path) -> None:
    p = PipelineBuilder("plug")
    q = p.input("text", str)
    p.node("s", "shout", text=q)
    pipeline = p.build()
    assert pipeline.plugins == {"orch-demo-plugin": "0.3.1"}
    result = orch.run(pipeline, {"text": "hi"}, store=MemoryStore())
    assert result.ok
    assert result.outputs["s"].text == "HI!"
    assert result.record.plugins == {"orch-demo-plugin": "0.3.1"}


def test_plugin_router_drives_branches(plugin_site: Path) -> None:
    p = PipelineBuilder("coin")
    q = p.input("text", str)
    r = p.node("coin", "coin-router", text=q)
    p.node("h", "shout", text=q, when=r.selects("heads"))
    p.node("t", "shout", text=q, when=r.selects("tails"))
    result = orch.run(p.build(), {"text": "x"}, store=MemoryStore(), seed=1)
    assert result.ok
    statuses = {sid: s.status for sid, s in result.steps.items()}
    assert sorted(statuses.values()).count("ok") == 2  # router + one branch


def test_broken_plugin_error_names_package(plugin_site: Path) -> None:
    with pytest.raises(PluginError, match="orch-broken-plugin") as info:
        load_agent("broken")
    assert "fix:" in str(info.value)
    p = PipelineBuilder("b")
    q = p.input("text", str)
    p.node("x", "broken", text=q)
    with pytest.raises(PipelineValidationError) as err:
        p.build()
    assert err.value.problems[0].code == "unknown-agent"
    assert "orch-broken-plugin" in str(err.value)


def test_unknown_plugin_lists_installed(plugin_site: Path) -> None:
    with pytest.raises(PluginError, match="no plugin agent named 'nope'") as info:
        load_agent("nope")
    assert "shout" in str(info.value)


def test_import_orch_survives_broken_plugin(plugin_site: Path) -> None:
    # Discovery is lazy: listing agents from a good package works beside a broken one.
    agent, dist = load_agent("shout")
    assert agent.name == "shout"
    assert dist == ("orch-demo-plugin", "0.3.1")
