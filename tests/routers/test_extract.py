"""Answer extractors: every format they read, and what they refuse."""

from __future__ import annotations

import pytest

from routers._extract import (
    AS_RECORDED,
    CodeEquivalence,
    as_recorded,
    extractor,
    number,
    option_letter,
    short_text,
)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("So the answer is \\boxed{C}.", "C"),
        ("\\boxed{ b } ... on reflection \\boxed{D}", "D"),
        ("The answer is (B).", "B"),
        ("Answer: e", "E"),
        ("J", "J"),
        ("(a)", "A"),
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_option_letter(text: str, letter: str | None) -> None:
    assert option_letter(text) == letter


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("The total is 1,250 dollars.", "1250"),
        ("x = 3.50", "3.5"),
        ("so \\boxed{42} (not 41)", "42"),
        ("-0.0", "0"),
        ("about 7.000 apples", "7"),
        ("-12", "-12"),
        ("no digits here", None),
        # longer than Decimal's default 28 digits (a recorded GSM8K program output)
        ("2143578619350635529335493099520", "2143578619350635529335493099520"),
        ("1234567890123456789012345678901.50", "1234567890123456789012345678901.5"),
    ],
)
def test_number(text: str, value: str | None) -> None:
    assert number(text) == value


def test_short_text_and_code() -> None:
    assert short_text("The Eiffel Tower!") == short_text("eiffel  tower") == "eiffel tower"
    assert short_text("...") is None
    code = CodeEquivalence()
    assert code("```python\nx = 1  # one\n```") == code("x = 1")
    by_length = CodeEquivalence(lambda src: str(len(src.strip())))
    assert by_length("abc") == by_length("xyz")


def test_as_recorded_is_a_registered_extractor() -> None:
    read = extractor(AS_RECORDED)
    assert read is as_recorded
    assert read("  05/01/2021 \n") == "05/01/2021"
    assert read("2.5") == "2.5"
    assert read("two   words") == "two words"
    assert read("") is None and read("  \n ") is None


def test_unknown_extractor() -> None:
    with pytest.raises(ValueError, match="unknown answer extractor 'roman'"):
        extractor("roman")
