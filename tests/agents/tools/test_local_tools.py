"""Python functions as tools: ``@tool`` and ``LocalTool`` (schemas from type hints, defaults,
validation hints, configuration errors, sync and async functions, return values, credential
injection)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel, SecretStr

from agents.tools import (
    CredentialVault,
    LocalSource,
    Principal,
    ToolBroker,
    ToolCallError,
    ToolConfigError,
    ToolPolicy,
    ToolResult,
    tool,
)
from agents.tools._tool import as_result
from orch import Context, Pipeline, PipelineBuilder, agent, arun
from traces import EffectRecord, MemoryStore, StepRecord


class Address(BaseModel):
    street: str
    zip: int


class Found(BaseModel):
    title: str
    score: float


@tool
def search(query: str, limit: int = 10, tags: list[str] | None = None) -> str:
    """Search the catalogue."""
    return f"{query}:{limit}:{tags}"


# -- schemas ------------------------------------------------------------------------------------


def test_the_schema_comes_from_the_type_hints() -> None:
    schema = search.info.input_schema
    assert schema["type"] == "object"
    assert schema["title"] == "SearchArguments"
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["query"]["type"] == "string"
    assert props["limit"] == {"default": 10, "title": "Limit", "type": "integer"}
    assert {"type": "null"} in props["tags"]["anyOf"]


def test_a_model_argument_appears_in_the_schema() -> None:
    @tool(name="ship-parcel")
    def ship(to: Address, express: bool = False) -> str:
        return to.street

    schema = ship.info.input_schema
    assert schema["title"] == "ShipParcelArguments"
    assert schema["properties"]["to"] == {"$ref": "#/$defs/Address"}
    assert set(schema["$defs"]["Address"]["properties"]) == {"street", "zip"}


def test_the_info_describes_the_tool() -> None:
    info = search.info
    assert (info.name, info.source, info.remote_name, info.version) == (
        "search",
        "local",
        "search",
        "1",
    )
    assert info.description == "Search the catalogue."
    summary = info.summary()
    assert summary["name"] == "search"
    assert summary["scopes"] == []
    assert summary["input_schema"] == info.input_schema


def test_decorator_options_become_the_policy() -> None:
    @tool(
        name="orders",
        version="3",
        description="Orders of a customer.",
        scopes={"orders:read"},
        tenant="acme",
        secrets={"pin"},
        alternative="search",
        timeout_s=5.0,
        expected_s=0.5,
    )
    def list_orders(customer: str, pin: str = "") -> str:
        """Not this."""
        return customer

    assert (list_orders.name, list_orders.version) == ("orders", "3")
    assert list_orders.description == "Orders of a customer."
    assert list_orders.policy == ToolPolicy(
        scopes=frozenset({"orders:read"}),
        tenant="acme",
        secrets=frozenset({"pin"}),
        alternative="search",
        timeout_s=5.0,
        expected_s=0.5,
    )


def test_an_expectation_above_the_timeout_is_clamped_by_the_decorator() -> None:
    @tool(timeout_s=1.0, expected_s=5.0)
    def slow(x: int) -> int:
        return x

    assert slow.policy.expected_s == 1.0


def test_with_policy_changes_only_the_policy() -> None:
    strict = search.with_policy(scopes=frozenset({"catalogue:read"}), timeout_s=2.0)
    assert strict.policy.scopes == {"catalogue:read"}
    assert strict.policy.timeout_s == 2.0
    assert strict.info.input_schema == search.info.input_schema
    assert search.policy.scopes == frozenset()


# -- validation ---------------------------------------------------------------------------------


def test_valid_arguments_come_back_parsed_with_defaults() -> None:
    parsed, hints = search.validate({"query": "q"})
    assert hints == {}
    assert parsed.model_dump() == {"query": "q", "limit": 10, "tags": None}
    # The parsed model is what invoke takes: no second validation.
    assert anyio.run(search.invoke, parsed, None).text == "q:10:None"


def test_defaults_fill_what_was_not_given() -> None:
    result = anyio.run(search.invoke, {"query": "books"}, None)
    assert result.text == "books:10:None"


def test_extra_arguments_are_refused() -> None:
    args, hints = search.validate({"query": "q", "colour": "red"})
    assert args is None
    assert hints == {"colour": "Extra inputs are not permitted"}


def test_hints_name_each_bad_argument() -> None:
    args, hints = search.validate({"limit": "many", "tags": "a"})
    assert args is None
    assert set(hints) == {"query", "limit", "tags"}
    assert hints["query"] == "Field required"
    assert "valid integer" in hints["limit"]
    assert "valid list" in hints["tags"]


def test_hints_of_nested_arguments_name_the_path() -> None:
    @tool
    def ship(to: Address) -> str:
        return to.street

    _, hints = ship.validate({"to": {"street": "Main St", "zip": "north"}})
    assert list(hints) == ["to.zip"]


def test_secret_arguments_are_validated_but_returned_unmasked() -> None:
    @tool
    def unlock(pin: SecretStr) -> str:
        return "open" if pin.get_secret_value() == "4711" else "closed"

    parsed, hints = unlock.validate({"pin": "4711"})
    assert hints == {}
    # Kept as the SecretStr, not dumped (a dump would mask it as '**********').
    assert parsed.pin.get_secret_value() == "4711"
    assert anyio.run(unlock.invoke, parsed, None).text == "open"
    assert anyio.run(unlock.invoke, {"pin": "4711"}, None).text == "open"


# -- configuration errors -----------------------------------------------------------------------


def test_a_parameter_without_a_type_hint_is_a_config_error() -> None:
    def f(query: str, limit) -> str:  # type: ignore[no-untyped-def]
        return query

    with pytest.raises(ToolConfigError, match="parameter 'limit' has no type hint; fix: annotate"):
        tool(f)


@pytest.mark.parametrize("kind", ["args", "kwargs"])
def test_star_parameters_are_a_config_error(kind: str) -> None:
    def with_args(*args: int) -> int:
        return 0

    def with_kwargs(**kwargs: int) -> int:
        return 0

    fn = with_args if kind == "args" else with_kwargs
    with pytest.raises(ToolConfigError, match=r"\*args/\*\*kwargs cannot be described"):
        tool(fn)


def test_unresolvable_annotations_are_a_config_error() -> None:
    def f(x: NoSuchType) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(ToolConfigError, match=r"annotations cannot be resolved.*fix: import"):
        tool(f)


def test_a_credential_arg_needs_a_credential_in_the_policy() -> None:
    def f(q: str, key: str) -> str:
        return q

    with pytest.raises(ToolConfigError, match="policy names no credential; fix: pass credential="):
        tool(credential_arg="key")(f)


def test_a_credential_arg_must_be_a_parameter() -> None:
    def f(q: str) -> str:
        return q

    with pytest.raises(ToolConfigError, match=r"credential_arg 'key' is not a parameter.*\['q'\]"):
        tool(credential="crm", credential_arg="key")(f)


def test_a_local_tool_name_may_not_contain_a_dot() -> None:
    @tool(name="crm.lookup")
    def lookup(q: str) -> str:
        return q

    with pytest.raises(ToolConfigError, match=r"must be non-empty and contain no '\.'"):
        ToolBroker([lookup])


def test_two_tools_may_not_share_a_name() -> None:
    with pytest.raises(ToolConfigError, match="two local tools are named 'search'"):
        LocalSource([search, search.with_policy(timeout_s=1.0)])


def test_only_tools_can_be_added() -> None:
    def plain(q: str) -> str:
        return q

    with pytest.raises(ToolConfigError, match="is not a tool; fix: decorate"):
        LocalSource().add(plain)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timeout_s": 0.0}, "timeout_s must be > 0"),
        ({"expected_s": 0.0}, "expected_s must be in"),
        ({"timeout_s": 1.0, "expected_s": 2.0}, "expected_s must be in"),
    ],
)
def test_policy_numbers_are_checked(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ToolConfigError, match=message):
        ToolPolicy(**changes)


def test_a_positional_only_parameter_is_refused_or_works() -> None:
    def double(x: int, /) -> int:
        return 2 * x

    try:
        t = tool(double)
    except ToolConfigError:
        return
    assert anyio.run(t.invoke, {"x": 2}, None).structured == 4


@pytest.mark.parametrize("name", ["_hint", "model_config"])
def test_every_parameter_is_in_the_schema_or_refused(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f({name}: int) -> int:\n    return 1", namespace)
    try:
        t = tool(namespace["f"])
    except ToolConfigError:
        return
    assert name in t.info.input_schema["properties"]


# -- sync and async functions, results ----------------------------------------------------------


def test_sync_and_async_functions_are_invoked_alike() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    @tool
    async def add_later(a: int, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b

    assert anyio.run(add.invoke, {"a": 2, "b": 3}, None) == ToolResult(
        content=[{"type": "text", "text": "5"}], structured=5
    )
    assert anyio.run(add_later.invoke, {"a": 2, "b": 3}, None).structured == 5


def test_the_function_receives_validated_values() -> None:
    got: list[Any] = []

    @tool
    def ship(to: Address, copies: int = 1) -> str:
        got.append((to, copies))
        return "ok"

    anyio.run(ship.invoke, {"to": {"street": "Main St", "zip": "12345"}, "copies": "2"}, None)
    assert got == [(Address(street="Main St", zip=12345), 2)]


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("hello", ToolResult(content=[{"type": "text", "text": "hello"}])),
        (
            Found(title="Dune", score=0.5),
            ToolResult(
                content=[{"type": "text", "text": '{"title":"Dune","score":0.5}'}],
                structured={"title": "Dune", "score": 0.5},
            ),
        ),
        (
            {"b": 1, "a": [1, 2]},
            ToolResult(
                content=[{"type": "text", "text": '{"a":[1,2],"b":1}'}],
                structured={"b": 1, "a": [1, 2]},
            ),
        ),
        (3.5, ToolResult(content=[{"type": "text", "text": "3.5"}], structured=3.5)),
        (None, ToolResult(content=[{"type": "text", "text": "null"}], structured=None)),
        (
            ToolResult(content=[{"type": "image", "data": "AA==", "mimeType": "image/png"}]),
            ToolResult(content=[{"type": "image", "data": "AA==", "mimeType": "image/png"}]),
        ),
    ],
)
def test_return_values_become_tool_results(value: Any, result: ToolResult) -> None:
    assert as_result(value) == result


def test_a_value_with_no_json_form_is_a_clear_error() -> None:
    @tool
    def bad() -> Any:
        return {1, 2}

    with pytest.raises(TypeError, match=r"returned a set, which has no JSON form.*fix: return str"):
        anyio.run(bad.invoke, {}, None)


def test_the_text_of_a_result_joins_its_text_blocks() -> None:
    result = ToolResult(
        content=[
            {"type": "text", "text": "one"},
            {"type": "image", "data": "AA=="},
            {"type": "text", "text": "two"},
        ]
    )
    assert result.text == "one\ntwo"


# -- credentials --------------------------------------------------------------------------------


@tool(credential="crm", credential_arg="api_key")
def crm_lookup(customer: str, api_key: str) -> str:
    """Look a customer up (echoes its key, as careless tools do)."""
    return f"{customer} via {api_key}"


def test_the_credential_arg_is_hidden_from_the_schema() -> None:
    assert set(crm_lookup.info.input_schema["properties"]) == {"customer"}
    assert crm_lookup.info.input_schema["required"] == ["customer"]


def test_the_credential_is_injected_into_the_call() -> None:
    assert anyio.run(crm_lookup.invoke, {"customer": "c1"}, "key-acme").text == "c1 via key-acme"


def test_a_caller_cannot_pass_the_credential_itself() -> None:
    _, hints = crm_lookup.validate({"customer": "c1", "api_key": "forged"})
    assert hints == {"api_key": "Extra inputs are not permitted"}


class Task(BaseModel):
    name: str = "task"


class Done(BaseModel):
    value: Any = None


Script = Callable[[Context], Awaitable[Any]]


@agent(name="local-tools-script", version="1")
async def scripted(task: Task, ctx: Context) -> Done:
    script: Script = ctx.service("script")
    return Done(value=await script(ctx))


def one_step() -> Pipeline:
    p = PipelineBuilder("local-tools")
    p.node("s", scripted, name=p.input("name", str))
    return p.build()


VAULT = CredentialVault({"acme": {"crm": "key-acme-0001"}, "globex": {"crm": "key-globex-0002"}})
ACME = Principal(id="alice", tenant="acme")
INITECH = Principal(id="carol", tenant="initech")


async def test_each_tenant_gets_its_own_credential_and_it_never_reaches_the_record() -> None:
    broker = ToolBroker([crm_lookup], credentials=VAULT)

    async def script(ctx: Context) -> Any:
        tools = ctx.service("tools")
        mine = await tools.call(ctx, "crm_lookup", {"customer": "c1"})
        theirs = await tools.call(
            ctx, "crm_lookup", {"customer": "c2"}, principal=Principal(id="g", tenant="globex")
        )
        try:
            await tools.call(ctx, "crm_lookup", {"customer": "c3"}, principal=INITECH)
        except ToolCallError as exc:
            denied = exc.error.message
        return [mine.text, theirs.text, denied]

    store = MemoryStore()
    result = await arun(
        one_step(),
        {"name": "creds"},
        store=store,
        services={"tools": broker, "principal": ACME, "script": script},
    )
    assert result.ok, result.error
    mine, theirs, denied = result.outputs["s"].value
    # The tool got the real key (it echoed it), and the echo was scrubbed from what came back.
    assert mine == "c1 via [redacted]"
    assert theirs == "c2 via [redacted]"
    assert "tenant 'initech' holds no credential 'crm'" in denied
    step = StepRecord.model_validate(store.get_value(dict(result.record.steps)["s"]))
    assert len(step.effects) == 2  # the denied call made no effect
    for key in step.effects:
        eff = EffectRecord.model_validate(store.get_value(key))
        assert eff.response is not None
        for artifact in (eff.request, eff.response):
            assert b"key-acme" not in store.get(artifact)
            assert b"key-globex" not in store.get(artifact)
    assert "key-acme" not in repr(broker.audit.entries("acme"))
    assert "key-acme" not in repr(VAULT)


async def test_a_raising_tool_is_an_internal_error_not_a_crash() -> None:
    @tool
    def broken(x: int) -> int:
        raise RuntimeError(f"cannot handle {x}")

    @tool
    def shapeless() -> Any:
        return object()

    broker = ToolBroker([broken, shapeless], max_attempts=1)

    async def script(ctx: Context) -> Any:
        out = []
        for name, args in [("broken", {"x": 7}), ("shapeless", {})]:
            try:
                await ctx.service("tools").call(ctx, name, args)
            except ToolCallError as exc:
                out.append([exc.error.category, exc.error.retryable, exc.error.message])
        return out

    result = await arun(
        one_step(),
        {"name": "raise"},
        store=MemoryStore(),
        services={"tools": broker, "principal": ACME, "script": script},
    )
    assert result.ok, result.error
    (b_cat, b_retry, b_msg), (s_cat, _, s_msg) = result.outputs["s"].value
    assert (b_cat, b_retry) == ("internal", False)
    assert b_msg == "the tool raised RuntimeError: cannot handle 7"
    assert s_cat == "internal"
    assert "no JSON form" in s_msg
    assert [a.invoked for a in broker.audit.entries("acme")] == [True, True]
