"""Pipeline inputs from the command line: ``KEY=VALUE`` pairs and ``KEY=@FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orch.cli.common import (
    CliError,
    check_utf8,
)

__all__ = ["parse_inputs"]


def _read_input_file(key: str, name: str) -> str:
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise CliError(
            f"--input {key}: cannot read {name!r}: {exc.strerror}",
            "check the path after '@' (it is relative to the working directory)",
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"--input {key}: file {name!r} is not UTF-8 text: byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start} cannot be decoded",
            f"convert it, e.g. iconv -f latin1 -t utf-8 {name} > {name}.utf8",
        ) from None
    # As a text-mode read would: the same file gives the same input on every platform.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_inputs(pairs: list[str], types: dict[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as pipeline inputs. A value is JSON when it parses, else text; for
    a ``str`` input a JSON string literal (``q='"hi"'``) is decoded, other text is taken as
    it is (so ``q='"\\"hi\\""'`` passes text with quotes). ``KEY=@FILE`` reads a UTF-8 file,
    taken as it is for a ``str`` input."""
    values: dict[str, Any] = {}
    for pair in pairs:
        check_utf8(f"--input {pair.partition('=')[0]!r}", pair)
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--input {pair!r} is not KEY=VALUE", "e.g. --input question='What?'")
        from_file = raw.startswith("@")
        if from_file:
            raw = _read_input_file(key, raw[1:])
        tp = types.get(key)
        if tp is str:
            values[key] = raw if from_file else _text_value(raw)
            continue
        try:  # JSON when it parses (numbers, lists, objects), else the raw text
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def _text_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            decoded = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(decoded, str):
            return decoded
    return raw
