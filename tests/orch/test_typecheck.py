"""Build-time type compatibility, type names, optionality and field paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel

from orch._typecheck import compatible, describe, element_type, field_type, is_optional


class Inner(BaseModel):
    y: int


class Outer(BaseModel):
    x: int
    inner: Inner
    maybe: Inner | None = None
    tags: list[str] = []


class Derived(Outer):
    extra: str = ""


@pytest.mark.parametrize(
    ("produced", "expected"),
    [
        (int, int),
        (int, float),  # pydantic widens int to float without loss
        (int, int | None),
        (Optional[int], int | None),  # noqa: UP045 - the typing spelling on purpose
        (Annotated[int, "meta"], int),
        (int, Annotated[float, "meta"]),
        (Derived, Outer),
        (list[int], list[float]),
        (list[int], list),
        (tuple[int, ...], list[int]),
        (dict[str, int], dict[str, float]),
        (Literal["a", "b"], str),
        (Literal["a"], Literal["a", "b"]),
        (Any, int),
        (int, Any),
        (list[int], object),
        (int | bool, int | bool | None),
    ],
)
def test_compatible(produced: Any, expected: Any) -> None:
    assert compatible(produced, expected) is True


@pytest.mark.parametrize(
    ("produced", "expected"),
    [
        (float, int),  # would lose the fraction
        (bool, int),  # a bool where a count is expected is a wiring mistake
        (int | None, int),  # None may arrive
        (str, int),
        (Outer, Derived),  # a base is not always a valid subclass
        (Outer, Inner),
        (list[str], list[int]),
        (list[bool], list[int]),
        (list, list[int]),  # unknown elements
        (dict[str, int], list[int]),
        (tuple[int, str], list[int]),  # a fixed-length tuple is a record, not a list
        (Literal["c"], Literal["a", "b"]),
        (str, Literal["a"]),
        (int, str),
    ],
)
def test_incompatible(produced: Any, expected: Any) -> None:
    assert compatible(produced, expected) is False


def test_list_is_compatible_with_sequence() -> None:
    assert compatible(list[int], Sequence[int])


def test_element_type_of_sequence() -> None:
    assert element_type(Sequence[int]) is int


def test_fixed_tuple_is_compatible_with_variadic_tuple() -> None:
    assert compatible(tuple[int, int], tuple[int, ...])


@pytest.mark.parametrize(
    ("tp", "text"),
    [
        (int, "int"),
        (type(None), "None"),
        (Outer, "test_typecheck.Outer"),
        (int | None, "int | None"),
        (Optional[str], "str | None"),  # noqa: UP045
        (list[int], "list[int]"),
        (dict[str, Inner], "dict[str, test_typecheck.Inner]"),
        (Literal["a", 1], "Literal['a', 1]"),
    ],
)
def test_describe(tp: Any, text: str) -> None:
    assert describe(tp) == text


def test_describe_unqualified() -> None:
    assert describe(Outer, qualified=False) == "Outer"
    assert describe(list[Outer] | None, qualified=False) == "list[Outer] | None"


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (int | None, True),
        (Optional[int], True),  # noqa: UP045
        (Annotated[str | None, "meta"], True),
        (Any, True),
        (type(None), True),
        (int, False),
        (list[int | None], False),
        (Inner, False),
    ],
)
def test_is_optional(tp: Any, expected: bool) -> None:
    assert is_optional(tp) is expected


def test_field_type_resolves_paths() -> None:
    assert field_type(Outer, ("x",)) == (int, None)
    assert field_type(Outer, ("inner", "y")) == (int, None)
    assert field_type(Outer, ("tags",)) == (list[str], None)
    assert field_type(Outer, ()) == (Outer, None)


def test_field_type_reports_problems() -> None:
    assert field_type(Outer, ("z",)) == (
        None,
        "Outer has no field 'z' (fields: inner, maybe, tags, x)",
    )
    assert field_type(Outer, ("inner", "q")) == (None, "Inner has no field 'q' (fields: y)")
    tp, err = field_type(Outer, ("x", "y"))
    assert tp is None and err == "field 'x' is a int, not a model with fields"
    tp, err = field_type(Outer, ("maybe", "y"))  # an Optional model cannot be walked into
    assert tp is None
    assert err == "field 'maybe' is a test_typecheck.Inner | None, not a model with fields"


def test_element_type() -> None:
    assert element_type(list[int]) is int
    assert element_type(list[int] | None) is int
    assert element_type(tuple[str, ...]) is str
    assert element_type(list) is Any
    assert element_type(tuple[int, int]) is None
    assert element_type(int) is None
