"""Model providers: the chat schema, the registry, provider adapters and offline clients.

Provider kinds come from the ``orch.models`` entry-point group (see :mod:`agents.models.hub`),
so a package can add one without changing this one.
"""

from __future__ import annotations

from agents.errors import ApiKeyError, ProviderError, RegistryError

from .anthropic_client import AnthropicClient
from .base import ModelClient
from .hub import PROVIDER_GROUP, ClientFactory, ModelHub, client_factory, provider_kinds
from .openai_client import OpenAIClient
from .recorded import RecordedClient, RecordedSet, SimulatedClient
from .registry import ModelInfo, ModelRegistry, ProviderConfig
from .scripted import Script, ScriptedClient
from .types import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage

__all__ = [
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
