"""A model provider kind from another package, for orch's tests: ``kind = "echo"``.

The model answers ``options.prefix`` followed by the last message, with token counts from the
word counts, so a call through it is recorded, metered and replayed like any provider's.
"""

from __future__ import annotations

from agents.models import ChatRequest, ChatResponse, ModelInfo, ProviderConfig, Usage

__all__ = ["EchoClient", "not_a_client"]


class EchoClient:
    """A :class:`~agents.models.ModelClient` that repeats the question."""

    made = 0
    """How many clients were made (a replay must make none call)."""
    calls = 0

    def __init__(self, provider: str, config: ProviderConfig) -> None:
        self.provider = provider
        self.prefix = str(config.options.get("prefix", ""))
        EchoClient.made += 1

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        EchoClient.calls += 1
        question = request.messages[-1].content or ""
        text = self.prefix + question
        return ChatResponse(
            text=text,
            usage=Usage(input_tokens=len(question.split()), output_tokens=len(text.split())),
            finish_reason="stop",
            provider_model=model.name,
        )

    async def aclose(self) -> None:
        return None


def not_a_client(provider: str, config: ProviderConfig) -> object:
    """A broken factory: what it makes has no ``complete``."""
    return object()
