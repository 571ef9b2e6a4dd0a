"""The ``word-count`` agent: how many words a text has, and the most frequent one.

A class agent, so the plugin entry point names the class and orch makes it with no
arguments. It reaches nothing outside its input, so it needs no ``ctx`` service or effect.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from orch import Agent, Context

__all__ = ["Counted", "Text", "WordCount"]


class Text(BaseModel):
    text: str


class Counted(BaseModel):
    words: int
    commonest: str | None
    """The most frequent word, lower-cased (ties to the one first in alphabetical order)."""


class WordCount(Agent[Text, Counted]):
    name = "word-count"
    version = "1"

    async def run(self, input: Text, ctx: Context) -> Counted:
        words = input.text.lower().split()
        counts = Counter(words)
        # Sorted, so a tie never depends on the order the text happened to list its words.
        commonest = min(counts, key=lambda w: (-counts[w], w)) if counts else None
        return Counted(words=len(words), commonest=commonest)
