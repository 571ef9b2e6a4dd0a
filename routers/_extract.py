"""Answer extractors: map a model's free text to a canonical answer, or None.

ACAR compares probe answers by their canonical form, so the extractor decides what counts as
"the same answer". One per task type: option letters for multiple choice, normalised numbers
for math, normalised short text, and a pluggable equivalence for code (string comparison
over-escalates code, as the ACAR paper notes), and ``as-recorded`` for recordings that keep
only the extracted answer as the response text. ``None`` means "no answer could be read";
the σ computation counts each such response as its own distinct answer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from typing import Final, Protocol

__all__ = [
    "AS_RECORDED",
    "EXTRACTORS",
    "CodeEquivalence",
    "Extractor",
    "as_recorded",
    "extractor",
    "number",
    "option_letter",
    "short_text",
]


class Extractor(Protocol):
    def __call__(self, text: str) -> str | None: ...


_BOXED = re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}", re.I)
_STATED = re.compile(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-J])\)?(?![A-Za-z])", re.I)
_ALONE = re.compile(r"^\s*\(?([A-J])\)?[.)]?\s*$", re.I)


def option_letter(text: str) -> str | None:
    """The chosen option letter A-J: the last ``\\boxed{X}``, else the last "answer is X",
    else a reply that is just the letter."""
    for pattern in (_BOXED, _STATED, _ALONE):
        found = pattern.findall(text)
        if found:
            return str(found[-1]).upper()
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_BOXED_ANY = re.compile(r"\\boxed\{([^{}]*)\}")


def number(text: str) -> str | None:
    """The final number (in ``\\boxed{}`` if there is one, else the last in the text),
    normalised: no thousands separators, no trailing zeros, ``-0`` is ``0``."""
    boxed = _BOXED_ANY.findall(text)
    source = boxed[-1] if boxed else text
    found = _NUMBER.findall(source)
    if not found:
        return None
    raw = found[-1].replace(",", "")
    # Enough precision for every digit: the default 28 makes quantize() fail on a long
    # integer such as a recorded 31-digit GSM8K program output.
    with localcontext() as exact:
        exact.prec = max(28, len(raw) + 2)
        try:
            value = Decimal(raw)
        except InvalidOperation:
            return None
        normal = value.normalize()
        if normal == normal.to_integral_value():
            normal = normal.quantize(Decimal(1))
        text_value = format(normal, "f")
    return "0" if text_value in ("-0", "-0.0") else text_value


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def short_text(text: str) -> str | None:
    """Lower case, no punctuation or articles, single spaces (SQuAD-style normalisation)."""
    normal = " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())
    return normal or None


def as_recorded(text: str) -> str | None:
    """The text itself is the answer, whitespace collapsed; empty text is no answer. For
    sources that keep only the extracted answer (the MoT recordings)."""
    normal = " ".join(text.split())
    return normal or None


class CodeEquivalence:
    """Code answers compared by a caller's notion of equivalence.

    ``canonicalize`` maps a program to a representative (for example its outputs on a fixed
    set of test inputs, or a normalised AST dump); two programs are the same answer when their
    representatives are equal. The default strips comments and whitespace, which is only a
    little better than string comparison: plug in an execution-based one for real use.
    """

    def __init__(self, canonicalize: Callable[[str], str | None] | None = None) -> None:
        self._canonicalize = canonicalize or _strip_code

    def __call__(self, text: str) -> str | None:
        return self._canonicalize(_code_block(text))


def _code_block(text: str) -> str:
    m = re.search(r"```(?:\w+)?\n(.*?)```", text, re.S)
    return m.group(1) if m else text


def _strip_code(code: str) -> str | None:
    lines = [re.sub(r"#.*$", "", line).strip() for line in code.splitlines()]
    joined = "\n".join(line for line in lines if line)
    return " ".join(joined.split()) or None


AS_RECORDED: Final = "as-recorded"

EXTRACTORS: dict[str, Extractor] = {
    "option": option_letter,
    "number": number,
    "text": short_text,
    "code": CodeEquivalence(),
    AS_RECORDED: as_recorded,
}


def extractor(name: str) -> Extractor:
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown answer extractor {name!r}; fix: use one of {sorted(EXTRACTORS)} or "
            "register one in routers._extract.EXTRACTORS"
        ) from None
