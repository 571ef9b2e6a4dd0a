"""Model provider kinds come from the ``orch.models`` entry-point group: orch's own four,
and a kind another package registers, installed here into a scratch site directory the way
pip lays a package out (the layout ``tests/conftest.py``'s ``install_plugin`` writes).

The plugin projects are under ``tests/agents/plugins/``: ``orch-echo-provider`` (a working
kind ``echo`` and two broken ones) and ``orch-echo-twin`` (``echo`` again, a conflict).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_install import install_plugin
from pydantic import BaseModel
from typer.testing import CliRunner

from agents.models import (
    PROVIDER_GROUP,
    AnthropicClient,
    ChatMessage,
    ChatRequest,
    ModelHub,
    ModelRegistry,
    OpenAIClient,
    RecordedClient,
    RegistryError,
    ScriptedClient,
    SimulatedClient,
    client_factory,
    provider_kinds,
)
from orch import Context, PipelineBuilder, agent, arun
from orch._replay import areplay
from orch.cli import app
from orch.errors import PluginError
from traces import EffectRecord, MemoryStore, StepRecord

PROJECTS = Path(__file__).parent / "plugins"
MODULES = ("orch_echo_provider", "orch_echo_twin")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory on sys.path with orch-echo-provider installed; its modules are
    forgotten before and after, so that each test sees when they are imported."""
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(PROJECTS / "orch-echo-provider", site)
    for name in MODULES:
        sys.modules.pop(name, None)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in MODULES:
        sys.modules.pop(name, None)


def registry(kind: str) -> ModelRegistry:
    return ModelRegistry.from_dict(
        {
            "providers": {"mine": {"kind": kind, "options": {"prefix": "you said: "}}},
            "models": {
                "m": {"provider": "mine", "name": "echo-1", "input_per_mtok": 1e6 / 4},
            },
        }
    )


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


@agent(name="ask", version="1")
async def ask(q: Q, ctx: Context) -> A:
    request = ChatRequest(model="m", messages=[ChatMessage(role="user", content=q.question)])
    return A(text=(await ctx.service("models").chat(ctx, request)).text)


def asking() -> Any:
    p = PipelineBuilder("ask-echo")
    p.output("answer", p.node("ask", ask, p.input("q", Q)))
    return p.build()


def test_the_built_in_kinds_are_entry_points_of_the_group() -> None:
    assert PROVIDER_GROUP == "orch.models"
    assert {"anthropic", "openai", "recorded", "simulated"} <= set(provider_kinds())
    assert client_factory("openai") is OpenAIClient
    assert client_factory("anthropic") is AnthropicClient
    assert client_factory("recorded") is RecordedClient
    assert client_factory("simulated") is SimulatedClient


async def test_a_plugin_kind_is_loaded_on_first_use_recorded_and_replayed(site: Path) -> None:
    from_site = ModelHub(registry("echo"))
    assert "echo" in provider_kinds()
    assert "orch_echo_provider" not in sys.modules  # checked by name, nothing imported yet
    store = MemoryStore()
    result = await arun(
        asking(), {"q": Q(question="two words")}, store=store, services={"models": from_site}
    )
    assert result.ok, result.error
    assert result.outputs["answer"].text == "you said: two words"
    echo = sys.modules["orch_echo_provider"].EchoClient
    assert (echo.made, echo.calls) == (1, 1)
    step = StepRecord.model_validate(store.get_value(dict(result.record.steps)["ask"]))
    effect = EffectRecord.model_validate(store.get_value(step.effects[0]))
    assert effect.usage == {"input_tokens": 2, "output_tokens": 4}
    assert effect.cost_usd == pytest.approx(0.5)  # 2 input tokens at 250k USD per M

    report = await areplay(
        asking(), result.run_id, store, services={"models": ModelHub(registry("echo"))}
    )
    assert report.clean and report.result.root_hash == result.root_hash
    assert echo.calls == 1  # the replay was served from the record


def test_an_unknown_kind_names_the_installed_kinds_and_the_fix(site: Path) -> None:
    with pytest.raises(RegistryError) as info:
        ModelHub(registry("ecco"))
    message = str(info.value)
    assert "provider 'mine' has kind 'ecco', which no installed package provides" in message
    assert "installed: anthropic, echo, echo-missing, echo-not-a-client, openai" in message
    assert (
        "fix: correct kind in [providers.mine], or install the package that registers 'ecco' "
        "in the orch.models entry-point group"
    ) in message


def test_an_unknown_kind_in_a_registry_file_fails_when_the_hub_is_made(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[providers.p]\nkind = "nope"\n[models.m]\nprovider = "p"\nname = "m"\n')
    assert ModelRegistry.load(path).providers["p"].kind == "nope"  # the registry is data
    with pytest.raises(RegistryError, match="kind 'nope', which no installed package provides"):
        ModelHub.load(path)


def test_a_provider_given_its_client_needs_no_installed_kind() -> None:
    hub = ModelHub(registry("not-installed"), clients={"mine": ScriptedClient(lambda r, m: "hi")})
    assert isinstance(hub.client("mine"), ScriptedClient)
    with pytest.raises(RegistryError, match=r"unknown provider 'x' \(registry has: mine\)"):
        hub.client("x")


def test_a_kind_whose_module_is_missing_is_a_plugin_error_naming_its_package(site: Path) -> None:
    hub = ModelHub(registry("echo-missing"))  # the name is installed: made
    with pytest.raises(PluginError) as info:
        hub.client("mine")
    assert (
        "provider kind 'echo-missing' (orch.models) from package orch-echo-provider 0.1.0 "
        "failed to load: ModuleNotFoundError"
    ) in str(info.value)
    assert "fix: reinstall or upgrade that package, or uninstall it" in str(info.value)


def test_a_factory_that_makes_no_model_client_is_refused(site: Path) -> None:
    hub = ModelHub(registry("echo-not-a-client"))
    with pytest.raises(PluginError, match="made a 'object', which is not a ModelClient"):
        hub.client("mine")


def test_a_kind_two_packages_register_is_refused(site: Path) -> None:
    install_plugin(PROJECTS / "orch-echo-twin", site)
    with pytest.raises(PluginError) as info:
        ModelHub(registry("echo")).client("mine")
    assert (
        "provider kind 'echo' (orch.models) is offered by several plugins (orch-echo-provider "
        "0.1.0: orch_echo_provider:EchoClient; orch-echo-twin 0.2.0: orch_echo_twin:EchoClient); "
        "fix: uninstall all but one"
    ) in str(info.value)


def test_orch_plugins_lists_the_provider_kinds(site: Path) -> None:
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    kinds = {p["name"]: p for p in json.loads(result.stdout) if p["group"] == "orch.models"}
    assert kinds["echo"]["ok"] and kinds["echo"]["package"] == "orch-echo-provider"
    assert kinds["openai"]["ok"] and kinds["openai"]["package"] == "orch"
    assert not kinds["echo-missing"]["ok"]
