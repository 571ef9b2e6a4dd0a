"""Agents: the class base, the decorator, config hashing and definition errors."""

from __future__ import annotations

import anyio
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


# -- identity: name, version, config hash --------------------------------------------------------

# Literal keys: a config hash is sha256 of canonical bytes, the same in every process.
M1_CONFIG_HASH = "sha256:9bcb9229a050f365f4a0625f27514dc6a3d7f38d75f5a461a18135f6321d2af4"
NO_CONFIG_HASH = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def test_config_hash_is_a_stable_literal() -> None:
    import hashlib

    from traces import canonical_bytes

    cfg = Cfg(model="m1")
    assert canonical_bytes(cfg) == b'{"model":"m1","temperature":0.0}'
    expected = "sha256:" + hashlib.sha256(b'{"model":"m1","temperature":0.0}').hexdigest()
    assert expected == M1_CONFIG_HASH
    assert Upper(model="m1").config_hash == M1_CONFIG_HASH
    assert Upper(temperature=0.0, model="m1").config_hash == M1_CONFIG_HASH  # order-free


def test_config_hash_is_stable_in_another_process() -> None:
    import subprocess
    import sys

    code = (
        "from pydantic import BaseModel\n"
        "from orch import Agent, Context\n"
        "class Q(BaseModel):\n    text: str\n"
        "class Cfg(BaseModel):\n    model: str\n    temperature: float = 0.0\n"
        "class Upper(Agent[Q, Q]):\n    name = 'upper'\n    config_model = Cfg\n"
        "print(Upper(model='m1').config_hash)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == M1_CONFIG_HASH


def test_no_config_hash_literal() -> None:
    @agent(name="plain", version="1")
    async def plain(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    assert plain.config == NoConfig()
    assert plain.config_hash == NO_CONFIG_HASH
    assert plain.ref.config_hash == NO_CONFIG_HASH


def test_class_agent_defaults() -> None:
    class Plain(Agent[Q, A]):
        async def run(self, input: Q, ctx: Context) -> A:
            return A(text=input.text)

    a = Plain()
    assert (a.name, a.version) == ("Plain", "0")
    assert a.config_model is NoConfig and a.config_hash == NO_CONFIG_HASH
    assert repr(a) == "<agent Plain@0>"
    with pytest.raises(AgentDefinitionError, match="invalid config for NoConfig"):
        Plain(temperature=1.0)


def test_class_agent_with_non_model_output() -> None:
    with pytest.raises(AgentDefinitionError) as info:

        class Bad(Agent[Q, str]):  # type: ignore[type-var]
            name = "bad-out"

    assert str(info.value) == (
        "agent 'bad-out': its output type <class 'str'> is not a pydantic model; fix: declare "
        "the output as a subclass of pydantic.BaseModel"
    )


def test_class_agent_without_run_raises_when_run() -> None:
    class Lazy(Agent[Q, A]):
        name = "lazy"

    with pytest.raises(NotImplementedError, match="agent 'lazy' does not implement run"):
        anyio.run(Lazy().run, Q(text="x"), None)


def test_with_config_keeps_identity_and_changes_hash() -> None:
    @agent(name="llm2", version="7", config=Cfg)
    async def llm2(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    one = llm2.with_config(model="m1")
    again = llm2.with_config(model="m1")
    hot = one.with_config(model="m1", temperature=0.9)
    assert (one.name, one.version, one.input_model, one.output_model) == ("llm2", "7", Q, A)
    assert one.config_hash == again.config_hash == M1_CONFIG_HASH
    assert hot.config_hash != one.config_hash
    assert one.config == Cfg(model="m1")  # the original is not changed by a copy
    with pytest.raises(AgentDefinitionError, match="pass either a config model or config fields"):
        llm2.with_config(Cfg(model="a"), model="b")


async def test_with_config_value_reaches_ctx_config() -> None:
    from orch import PipelineBuilder, arun
    from traces import MemoryStore

    @agent(name="cfgecho", version="1", config=Cfg)
    async def cfgecho(q: Q, ctx: Context) -> A:
        return A(text=f"{ctx.config.model}:{q.text}")

    p = PipelineBuilder("cfg")
    p.node("a", cfgecho.with_config(model="m9"), text="hi")
    result = await arun(p.build(), {}, store=MemoryStore())
    assert result.outputs == {"a": A(text="m9:hi")}


def test_decorator_invalid_name() -> None:
    async def f(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    with pytest.raises(AgentDefinitionError) as info:
        agent(name="bad name")(f)
    assert "has invalid name 'bad name'; fix: use letters, digits" in str(info.value)


def test_decorator_rejects_non_async_with_exact_message() -> None:
    def sync(q: Q, ctx: Context) -> A:
        return A(text=q.text)

    with pytest.raises(AgentDefinitionError) as info:
        agent(sync)  # type: ignore[arg-type]
    assert str(info.value) == (
        "agent 'sync' must be an async function; fix: define it with 'async def'"
    )


def test_decorator_missing_return_annotation() -> None:
    async def noret(q: Q, ctx: Context):  # type: ignore[no-untyped-def]
        return A(text=q.text)

    with pytest.raises(AgentDefinitionError, match="agent 'noret' lacks type annotations"):
        agent(noret)


def test_definition_errors_are_type_errors() -> None:
    assert issubclass(AgentDefinitionError, TypeError)
