"""The model hub: the registry plus one client per provider, and the recorded ``chat`` call.

Agents call models through ``ctx.service("models").chat(ctx, request)``: the request is
recorded as an effect (replayable, resumable), its usage and cost (from the registry's prices)
go into the effect record, and the live call goes to the provider the registry names. The hub
holds API keys only inside its clients: nothing it records contains one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from orch import Context

from .anthropic_client import AnthropicClient
from .base import ModelClient
from .openai_client import OpenAIClient
from .recorded import RecordedClient, SimulatedClient
from .registry import ModelRegistry, ProviderConfig
from .types import ChatRequest, ChatResponse

__all__ = ["CLIENT_KINDS", "ModelHub"]

ClientFactory = Callable[[str, ProviderConfig], ModelClient]

CLIENT_KINDS: dict[str, ClientFactory] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
    "recorded": RecordedClient,
    "simulated": SimulatedClient,
}


class ModelHub:
    """Resolves model ids to clients and records every call as an effect."""

    def __init__(
        self, registry: ModelRegistry, clients: Mapping[str, ModelClient] | None = None
    ) -> None:
        self.registry = registry
        self._clients: dict[str, ModelClient] = dict(clients or {})

    @classmethod
    def load(cls, path: str | Path) -> ModelHub:
        return cls(ModelRegistry.load(path))

    def client(self, provider: str) -> ModelClient:
        client = self._clients.get(provider)
        if client is None:
            config = self.registry.providers[provider]
            client = CLIENT_KINDS[config.kind](provider, config)
            self._clients[provider] = client
        return client

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Call the model now, unrecorded (for tools and tests; agents use :meth:`chat`)."""
        info = self.registry.model(request.model)
        return await self.client(info.provider).complete(request, info)

    async def chat(self, ctx: Context, request: ChatRequest) -> ChatResponse:
        """Call the model as a recorded effect of the current step."""
        info = self.registry.model(request.model)
        client = self.client(info.provider)

        def meter(r: ChatResponse) -> tuple[dict[str, int], float]:
            return r.usage.model_dump(), info.cost(r.usage)

        return await ctx.effect(
            "model",
            request.model,
            request,
            lambda: client.complete(request, info),
            response_model=ChatResponse,
            meter=meter,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
