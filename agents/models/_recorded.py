"""Offline model clients: answers from recorded responses, or from a seeded simulation.

**Recorded responses** live in a JSON file (``orch.recorded-responses/1``)::

    {"format": "orch.recorded-responses/1",
     "source": "where the recordings come from", "license": "their license",
     "items": [
       {"id": "GSM8K_12", "question": "the prompt as asked", "answer": "gold answer or null",
        "responses": {"model-id": [{"text": "...", "input_tokens": 31, "output_tokens": 80,
                                    "cost_usd": 0.0001}, ...more samples]}}]}

A request is matched to the item whose ``question`` occurs in its last user message (the
longest such question wins, so a prompt template around the question is fine), and answered
with sample ``request.sample`` (cycling when there are fewer). Both clients are
deterministic: the same request always gets the same response.

**Simulated** models answer items of the same file without recordings: with probability
``skill`` the gold answer, else another option, chosen by an RNG seeded from the model and
the request hash (never from global randomness).
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field

from agents.errors import ProviderError
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._types import ChatRequest, ChatResponse, Usage
from traces import canonical_bytes

__all__ = ["RecordedClient", "RecordedItem", "RecordedSample", "RecordedSet", "SimulatedClient"]

FORMAT = "orch.recorded-responses/1"


class RecordedSample(BaseModel):
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class RecordedItem(BaseModel):
    id: str
    question: str
    answer: str | None = None
    options: list[str] = Field(default_factory=list)
    """Possible answers (option letters, say), for the simulated client."""
    responses: dict[str, list[RecordedSample]] = Field(default_factory=dict)


class RecordedSet(BaseModel):
    format: str = FORMAT
    source: str = ""
    license: str = ""
    items: list[RecordedItem]

    @classmethod
    def load(cls, path: str | Path) -> RecordedSet:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ProviderError(
                "recorded", str(path), f"cannot read recorded responses: {exc}"
            ) from exc
        if data.get("format") != FORMAT:
            raise ProviderError(
                "recorded",
                str(path),
                f"not a recorded-responses file (format {data.get('format')!r}, expected "
                f"{FORMAT!r}); fix: see agents.models.RecordedSet for the schema",
            )
        return cls.model_validate(data)

    @cached_property
    def _by_length(self) -> list[RecordedItem]:
        return sorted(self.items, key=lambda i: -len(i.question))

    @cached_property
    def _exact(self) -> dict[str, RecordedItem]:
        # The scan returns the longest question inside the prompt; when the prompt is a
        # question, nothing longer fits in it, so it is that question (the first item of
        # that text, as in the scan: earlier items overwrite later ones here).
        out: dict[str, RecordedItem] = {}
        for item in reversed(self._by_length):
            out[item.question] = item
        return out

    def match(self, request: ChatRequest) -> RecordedItem | None:
        """The recorded item whose question is in the last user message (the longest such
        question when several are); an exact match is found without a scan."""
        users = [m.content for m in request.messages if m.role == "user"]
        if not users:
            return None
        prompt = users[-1]
        exact = self._exact.get(prompt)
        if exact is not None:
            return exact
        for item in self._by_length:
            if item.question in prompt:
                return item
        return None


def _data_path(provider: str, config: ProviderConfig) -> str:
    path = config.options.get("data")
    if not isinstance(path, str):
        raise ProviderError(
            provider,
            "-",
            "a recorded or simulated provider needs options.data = 'path/to/responses.json'",
        )
    return path


class RecordedClient:
    """Serves recorded responses; a question or model without one is a clear error."""

    def __init__(self, provider: str, config: ProviderConfig, data: RecordedSet | None = None):
        self.provider = provider
        self.config = config
        self.data = data if data is not None else RecordedSet.load(_data_path(provider, config))

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        item = self.data.match(request)
        if item is None:
            raise ProviderError(
                self.provider,
                model.id,
                "no recorded item matches this prompt; fix: ask one of the recorded questions, "
                "or route unrecorded questions to a simulated provider",
            )
        samples = item.responses.get(model.name)
        if not samples:
            raise ProviderError(
                self.provider,
                model.id,
                f"item {item.id!r} has no recorded response of model {model.name!r} (it has "
                f"{', '.join(sorted(item.responses)) or 'none'})",
            )
        s = samples[request.sample % len(samples)]
        return ChatResponse(
            text=s.text,
            usage=Usage(input_tokens=s.input_tokens, output_tokens=s.output_tokens),
            finish_reason="stop",
            provider_model=model.name,
        )


class SimulatedClient:
    """A seeded stand-in model: right with probability ``options.skill`` (default 0.6)."""

    def __init__(self, provider: str, config: ProviderConfig, data: RecordedSet | None = None):
        self.provider = provider
        self.config = config
        self.skill = float(config.options.get("skill", 0.6))
        self.data = data if data is not None else RecordedSet.load(_data_path(provider, config))

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        item = self.data.match(request)
        seed = hashlib.sha256(model.id.encode() + b"\0" + canonical_bytes(request)).digest()
        rng = random.Random(int.from_bytes(seed[:8], "big"))
        options = item.options if item is not None else []
        gold = item.answer if item is not None else None
        if gold is not None and rng.random() < self.skill:
            answer = gold
        else:
            wrong = [o for o in options if o != gold] or ["I am not sure"]
            answer = rng.choice(wrong)
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        text = f"The answer is {answer}."
        return ChatResponse(
            text=text,
            usage=Usage(input_tokens=prompt_tokens, output_tokens=len(text.split())),
            finish_reason="stop",
            provider_model=model.name,
        )
