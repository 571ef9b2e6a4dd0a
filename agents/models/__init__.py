"""Model providers: the chat schema, the registry, provider adapters and offline clients.

Provider kinds come from the ``orch.models`` entry-point group (see :mod:`agents.models._hub`),
so a package can add one without changing this one.
"""

from __future__ import annotations

from agents.errors import ApiKeyError, ProviderError, RegistryError
from agents.models._anthropic_client import AnthropicClient
from agents.models._base import ModelClient
from agents.models._hub import (
    PROVIDER_GROUP,
    ClientFactory,
    ModelHub,
    client_factory,
    provider_kinds,
)
from agents.models._openai_client import OpenAIClient
from agents.models._recorded import (
    RecordedClient,
    RecordedItem,
    RecordedSample,
    RecordedSet,
    SimulatedClient,
)
from agents.models._registry import ModelInfo, ModelRegistry, ProviderConfig
from agents.models._scripted import Script, ScriptedClient
from agents.models._types import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage

__all__ = [
    # what other packages, the reproductions and the examples use
    "RecordedItem",
    "RecordedSample",
    # the chat schema (what is recorded)
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ToolCall",
    "ToolSpec",
    "Usage",
    # the hub and the registry
    "ModelHub",
    "ModelInfo",
    "ModelRegistry",
    "ProviderConfig",
    # provider kinds (the orch.models entry-point group) and the client seam
    "PROVIDER_GROUP",
    "ClientFactory",
    "ModelClient",
    "client_factory",
    "provider_kinds",
    # built-in clients
    "AnthropicClient",
    "OpenAIClient",
    "RecordedClient",
    "RecordedSet",
    "SimulatedClient",
    # offline test double
    "Script",
    "ScriptedClient",
    # errors (defined in agents.errors)
    "ApiKeyError",
    "ProviderError",
    "RegistryError",
]
