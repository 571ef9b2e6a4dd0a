"""Agents: the class base, the decorator, config hashing and definition errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from orch import Agent, AgentDefinitionError, Context, FunctionAgent, NoConfig, agent
from traces import hash_value


class Q(BaseModel):
    text: str


class A(BaseModel):
    text: str


class Cfg(BaseModel):
    model: str
    temperature: float = 0.0


class Upper(Agent[Q, A]):
    name = "upper"
    version = "2"
    config_model = Cfg

    async def run(self, input: Q, ctx: Context) -> A:
        return A(text=input.text.upper())


def test_class_agent_contract() -> None:
    a = Upper(model="m1")
    assert (a.name, a.version) == ("upper", "2")
    assert a.input_model is Q and a.output_model is A
    assert a.config == Cfg(model="m1")
    assert a.config_hash == hash_value(Cfg(model="m1"))
    assert a.ref.model_dump() == {"name": "upper", "version": "2", "config_hash": a.config_hash}


def test_config_hash_follows_the_config() -> None:
    assert Upper(model="m1").config_hash == Upper(Cfg(model="m1")).config_hash
    assert Upper(model="m1").config_hash != Upper(model="m2").config_hash
    assert Upper(model="m1").config_hash != Upper(model="m1", temperature=0.5).config_hash


def test_class_agent_config_errors() -> None:
    with pytest.raises(AgentDefinitionError, match=r"invalid config for Cfg \(model: Field req"):
        Upper()
    with pytest.raises(AgentDefinitionError, match="pass either a config model or config fields"):
        Upper(Cfg(model="m"), model="n")
    with pytest.raises(AgentDefinitionError, match="config is a Q, expected Cfg"):
        Upper(Q(text="x"))


def test_class_agent_without_models() -> None:
    class Bare(Agent):  # type: ignore[type-arg]
        name = "bare"

    with pytest.raises(AgentDefinitionError, match="agent 'bare' has no input_model"):
        Bare()


def test_class_agent_with_non_model_types() -> None:
    with pytest.raises(
        AgentDefinitionError, match="its input type <class 'int'> is not a pydantic"
    ):

        class Bad(Agent[int, A]):  # type: ignore[type-var]
            name = "bad"


def test_invalid_agent_name() -> None:
    class Spaced(Agent[Q, A]):
        name = "has space"

    with pytest.raises(AgentDefinitionError, match="invalid name 'has space'"):
        Spaced()


async def test_decorator_builds_an_agent() -> None:
    @agent(name="echo", version="3")
    async def echo(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    assert isinstance(echo, FunctionAgent)
    assert (echo.name, echo.version) == ("echo", "3")
    assert echo.input_model is Q and echo.output_model is A
    assert echo.config_model is NoConfig
    assert echo.config_hash == hash_value(NoConfig())

    @agent
    async def plain(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    assert plain.name == "plain" and plain.version == "0"


def test_decorator_config_and_with_config() -> None:
    @agent(name="llm", version="1", config=Cfg)
    async def llm(q: Q, ctx: Context) -> A:
        return A(text=ctx.config.model)

    assert llm.unconfigured is not None
    assert "needs a config (Cfg requires model)" in llm.unconfigured
    assert "llm.with_config(model=...)" in llm.unconfigured
    one = llm.with_config(model="a")
    two = llm.with_config(Cfg(model="b"))
    assert one.unconfigured is None and one.config == Cfg(model="a")
    assert one.config_hash != two.config_hash
    with pytest.raises(AgentDefinitionError, match="invalid config for Cfg"):
        llm.with_config(temperature=1.0)
    with pytest.raises(AgentDefinitionError, match="config is a Q, expected Cfg"):
        llm.with_config(Q(text="x"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(q: Q, ctx: Context) -> A: ...", "must be an async function"),
        ("async def f(q: Q) -> A: ...", "takes 1 parameters"),
        ("async def f(q, ctx): ...", "lacks type annotations"),
        ("async def f(q: int, ctx: Context) -> A: ...", "its input type <class 'int'>"),
        ("async def f(q: Q, ctx: Context) -> str: ...", "its output type <class 'str'>"),
        ("async def f(q: 'Missing', ctx: Context) -> A: ...", "annotations cannot be resolved"),
    ],
)
def test_decorator_definition_errors(source: str, message: str) -> None:
    scope: dict[str, object] = {"Q": Q, "A": A, "Context": Context}
    exec(source, scope)
    with pytest.raises(AgentDefinitionError, match=message) as info:
        agent(name="f")(scope["f"])  # type: ignore[arg-type]
    assert "fix:" in str(info.value)
