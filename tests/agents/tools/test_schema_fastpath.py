"""The argument validator's fast path never says "valid" where jsonschema says "invalid".

For the common schema shape (an object of typed properties with ``required``, ``enum`` and
``additionalProperties``) the broker decides validity without jsonschema's machinery; any
other schema goes to jsonschema. Hypothesis draws schemas of that shape and JSON arguments
and checks the two agree, both ways.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.tools._schema import SchemaValidator, _flat_check

TYPES = ["string", "integer", "number", "boolean", "null", "array", "object"]
NAMES = st.sampled_from(["a", "b", "c", "d"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from([1.0, 2.0, 0.0]),
    st.text(max_size=3),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(NAMES, inner, max_size=2),
    max_leaves=4,
)


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, unique=True, max_size=4)):
        prop: dict[str, Any] = {}
        kind = draw(
            st.one_of(
                st.none(),
                st.sampled_from(TYPES),
                st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
            )
        )
        if kind is not None:
            prop["type"] = kind
        if draw(st.booleans()):
            prop["enum"] = draw(st.lists(SCALARS, min_size=1, max_size=3))
        if draw(st.booleans()):
            prop["description"] = "x"
        props[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    schema["required"] = draw(st.lists(NAMES, unique=True, max_size=3))
    extra = draw(st.sampled_from([None, True, False]))
    if extra is not None:
        schema["additionalProperties"] = extra
    return schema


@settings(max_examples=400, deadline=None)
@given(schemas(), st.dictionaries(NAMES, JSON, max_size=4))
def test_the_fast_path_agrees_with_jsonschema(schema: dict[str, Any], args: dict[str, Any]) -> None:
    fast = _flat_check(schema)
    assert fast is not None, schema  # every drawn schema is of the shape it handles
    expected = jsonschema.Draft202012Validator(schema).is_valid(args)
    if fast(args):  # the fast path may only ever err towards asking jsonschema
        assert expected, (schema, args)
    assert (SchemaValidator(schema).hints(args) == {}) == expected


def test_other_schemas_take_the_full_validator() -> None:
    for schema in (
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {}}},
        {"type": "object", "properties": {"s": {"type": "string"}}, "patternProperties": {}},
        {"anyOf": [{"type": "object"}]},
    ):
        assert _flat_check(schema) is None, schema
    v = SchemaValidator({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}})
    assert v.hints({"n": -1}) == {"n": "-1 is less than the minimum of 0"}
    assert v.hints({"n": 3}) == {}
