"""The model-client seam: one protocol every provider adapter implements."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from agents.errors import ApiKeyError
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._types import ChatRequest, ChatResponse

__all__ = ["ModelClient", "api_key"]


@runtime_checkable
class ModelClient(Protocol):
    """Turns a :class:`ChatRequest` into a :class:`ChatResponse` for one provider."""

    provider: str
    """The provider name from the registry (it names the client in errors and spans)."""

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse: ...

    async def aclose(self) -> None: ...


def api_key(provider: str, config: ProviderConfig, default_env: str) -> str:
    """The provider's API key from the environment (never from a file or a record)."""
    env = config.api_key_env or default_env
    key = os.environ.get(env)
    if key:
        return key
    if config.base_url is not None:
        # A local OpenAI-compatible server usually takes no key; the SDK still wants one.
        return "unused"
    raise ApiKeyError(
        f"provider {provider!r} needs an API key in ${env}; fix: export {env}=... (keys are "
        "read from the environment only and never recorded)"
    )
