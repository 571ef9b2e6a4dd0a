"""Keeping secrets out of records: ``redact_arguments`` (explicit names, name patterns at any
depth, lists), ``schema_secrets`` (what a JSON schema marks as secret) and ``scrub``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretBytes, SecretStr

from agents.tools import tool
from agents.tools._redact import REDACTED, redact_arguments, schema_secrets, scrub

# -- redact_arguments ---------------------------------------------------------------------------


def test_explicitly_named_arguments_are_redacted() -> None:
    redacted, found = redact_arguments({"pin": "4711", "door": "front"}, {"pin"})
    assert redacted == {"pin": REDACTED, "door": "front"}
    assert found == ["4711"]


def test_explicit_names_are_top_level_argument_names() -> None:
    args = {"code": "1", "lock": {"code": "2"}}
    redacted, found = redact_arguments(args, ["code"])
    assert redacted == {"code": REDACTED, "lock": {"code": "2"}}
    assert found == ["1"]


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "passphrase",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "api_key",
        "api-key",
        "apikey",
        "ApiKey",
        "authorization",
        "Authorisation",
        "credentials",
        "private_key",
        "privatekey",
        "session_cookie",
    ],
)
def test_names_that_look_secret_are_redacted(name: str) -> None:
    redacted, found = redact_arguments({name: "hunter2!", "user": "bob"}, ())
    assert redacted == {name: REDACTED, "user": "bob"}
    assert found == ["hunter2!"]


@pytest.mark.parametrize("name", ["user", "query", "pass", "author", "keys", "path", "count"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert redact_arguments({name: "value"}, ()) == ({name: "value"}, [])


def test_name_patterns_apply_at_any_depth_and_inside_lists() -> None:
    args = {
        "request": {"url": "https://x", "headers": {"Authorization": "Bearer abc123"}},
        "accounts": [{"user": "a", "api_key": "key-a"}, {"user": "b", "api_key": "key-b"}, "c"],
        "matrix": [[{"token": "t-1"}]],
    }
    redacted, found = redact_arguments(args, ())
    assert redacted == {
        "request": {"url": "https://x", "headers": {"Authorization": REDACTED}},
        "accounts": [{"user": "a", "api_key": REDACTED}, {"user": "b", "api_key": REDACTED}, "c"],
        "matrix": [[{"token": REDACTED}]],
    }
    assert sorted(found) == ["Bearer abc123", "key-a", "key-b", "t-1"]


def test_a_secret_value_is_redacted_whole_and_every_string_in_it_is_found() -> None:
    args = {"credentials": {"user": "u-name", "keys": ["k-one", "k-two"], "n": 3}, "token": 99}
    redacted, found = redact_arguments(args, ())
    assert redacted == {"credentials": REDACTED, "token": REDACTED}
    # Numbers are found as their text too: a tool may quote a secret number in a message.
    assert sorted(found) == ["3", "99", "k-one", "k-two", "u-name"]


def test_the_arguments_are_not_changed() -> None:
    args = {"password": "p", "nested": {"token": "t"}, "list": [{"secret": "s"}]}
    before = copy.deepcopy(args)
    redact_arguments(args, ["list"])
    assert args == before


def test_keys_come_back_as_strings() -> None:
    redacted, _ = redact_arguments({"outer": {1: "one"}}, ())
    assert redacted == {"outer": {"1": "one"}}
    redacted, _ = redact_arguments({2: "two", "user": "bob"}, ())
    assert redacted == {"2": "two", "user": "bob"}


def test_flat_arguments_come_back_as_a_copy() -> None:
    """Flat arguments with nothing secret take a short path: still a new dict."""
    args = {"user": "bob", "n": 3, "ratio": 0.5, "ok": True, "none": None}
    redacted, found = redact_arguments(args, frozenset({"other"}))
    assert redacted == args and redacted is not args and found == []
    redacted["user"] = "eve"
    assert args["user"] == "bob"


# -- schema_secrets -----------------------------------------------------------------------------


class Login(BaseModel):
    user: str
    pw: SecretStr
    raw: SecretBytes
    hidden: str = Field(json_schema_extra={"writeOnly": True})
    code: str = Field(json_schema_extra={"format": "password"})


def test_pydantic_secret_fields_are_marked_in_the_schema() -> None:
    assert schema_secrets(Login.model_json_schema()) == {"pw", "raw", "hidden", "code"}


def test_a_local_tools_secret_str_argument_is_found_from_its_schema() -> None:
    @tool
    def unlock(door: str, pin: SecretStr) -> str:
        return door

    assert schema_secrets(unlock.info.input_schema) == {"pin"}


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "object"},
        {"properties": ["pw"]},
        {"properties": {"pw": "password"}},
        {"properties": {"pw": {"type": "string", "writeOnly": "yes"}}},
    ],
)
def test_schemas_without_marks_have_no_secrets(schema: dict[str, Any]) -> None:
    assert schema_secrets(schema) == frozenset()


class WithOptional(BaseModel):
    pin: SecretStr | None = None


class WithList(BaseModel):
    pins: list[SecretStr]


class Inner(BaseModel):
    pin: SecretStr


class WithNested(BaseModel):
    lock: Inner


@pytest.mark.parametrize(
    ("model", "name"), [(WithOptional, "pin"), (WithList, "pins"), (WithNested, "lock")]
)
def test_secret_str_wrapped_in_the_schema_is_still_secret(
    model: type[BaseModel], name: str
) -> None:
    assert name in schema_secrets(model.model_json_schema())


# -- scrub --------------------------------------------------------------------------------------


def test_scrub_replaces_secrets_in_every_string_at_any_depth() -> None:
    value = {
        "content": [{"type": "text", "text": "key=sk-123456 and again sk-123456"}],
        "structured": {"env": ["HOME=/root", "KEY=sk-123456"], "n": 7, "ok": True},
    }
    assert scrub(value, ["sk-123456"]) == {
        "content": [{"type": "text", "text": f"key={REDACTED} and again {REDACTED}"}],
        "structured": {"env": ["HOME=/root", f"KEY={REDACTED}"], "n": 7, "ok": True},
    }


def test_scrub_replaces_the_longest_secret_first() -> None:
    assert scrub("xx-abcdefgh-yy", ["abcdef", "abcdefgh"]) == f"xx-{REDACTED}-yy"


def test_short_values_are_not_scrubbed_from_text() -> None:
    assert scrub("abc and abcde", ["abc", "abcde"]) == "abc and abcde"


def test_scrub_without_secrets_returns_the_value_itself() -> None:
    value = {"a": ["b"]}
    assert scrub(value, []) is value
    assert scrub(value, ["short"]) is value


def test_scrub_leaves_the_value_unchanged() -> None:
    value = {"text": "token sk-123456"}
    scrub(value, ["sk-123456"])
    assert value == {"text": "token sk-123456"}


def test_a_secret_used_as_a_key_is_scrubbed() -> None:
    out = scrub({"sk-123456": "value"}, ["sk-123456"])
    assert "sk-123456" not in repr(out)
