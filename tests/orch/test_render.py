"""Terminal rendering: recorded text is made inert before a terminal can act on it."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from orch.render._terminal import InertConsole, inert, inert_json

# Every character a terminal may act on, and that inert() must never let through.
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("clear\x1b[2J", "clear\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("\x1b]8;;https://evil.example\x1b\\link", "\\x1b]8;;https://evil.example\\x1b\\link"),
        ("safe\rFORGED", "safe\\rFORGED"),
        ("abc\x08\x08\x08xyz\x7f", "abc\\x08\\x08\\x08xyz\\x7f"),
        ("\x9b31m8-bit CSI\x85", "\\x9b31m8-bit CSI\\x85"),
        ("\u202eevil\u202c \u2066iso\u2069 \u200f", "\\u202eevil\\u202c \\u2066iso\\u2069 \\u200f"),
        ("x\n✔ intact", "x\\n✔ intact"),
        ("a\tb", "a\\tb"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bad byte \udcff", "bad byte \\udcff"),
        (
            "plain text, ünïcödé, 中文, emoji 🎉, [markup]",
            "plain text, ünïcödé, 中文, emoji 🎉, [markup]",
        ),
    ],
)
def test_single_line_fields_show_every_control(raw: str, shown: str) -> None:
    assert inert(raw) == shown


def test_multiline_keeps_newlines_and_tabs_only() -> None:
    assert inert("one\n\ttwo\r\nthree\x1b[0m", multiline=True) == "one\n\ttwo\\r\nthree\\x1b[0m"


@given(st.text())
def test_nothing_unsafe_survives(text: str) -> None:
    line = inert(text)
    assert UNSAFE.search(line) is None
    assert "\n" not in line and "\t" not in line
    block = inert(text, multiline=True)
    assert UNSAFE.search(block) is None
    assert block.count("\n") == text.count("\n")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_printable_text_is_unchanged(text: str) -> None:
    assert inert(text) == text == inert(text, multiline=True)


@given(st.recursive(st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_inert_json_is_the_same_json_value(value: object) -> None:
    shown = inert_json(json.dumps(value, ensure_ascii=False))
    assert UNSAFE.search(shown) is None
    assert json.loads(shown) == value


def rendered(obj: object, *, terminal: bool) -> str:
    buffer = io.StringIO()
    colours = "truecolor" if terminal else None
    console = InertConsole(file=buffer, force_terminal=terminal, color_system=colours, width=120)
    console.print(obj)
    return buffer.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
def test_console_escapes_what_reaches_a_segment_but_keeps_its_own_styles(terminal: bool) -> None:
    # A renderable that forgot inert(): the console is the net under it.
    text = Text("ok ", style="bold green")
    text.append("\x1b[2J\x1b]0;pwned\x07\u202eevil\x9b31m", style="red")
    out = rendered(text, terminal=terminal)
    without_sgr = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert UNSAFE.search(without_sgr.replace("\n", "")) is None
    assert "\\x1b[2J" in out and "\\u202e" in out and "\\x9b" in out
    if terminal:
        assert "\x1b[1;32m" in out  # rich's own colours still reach the terminal
    else:
        assert "\x1b" not in out


def test_console_drops_hyperlinks() -> None:
    out = rendered(Text("click", style="link https://evil.example"), terminal=True)
    assert "\x1b]8" not in out and "evil.example" not in out
    assert "click" in out


def test_markup_in_recorded_text_stays_text() -> None:
    # Recorded strings go in as Text, so rich never reads "[link=...]" as markup.
    out = rendered(Text(inert("[link=https://evil.example]x[/link] [bold]b[/]")), terminal=True)
    assert "\x1b]8" not in out
    assert "[link=https://evil.example]x[/link] [bold]b[/]" in out
