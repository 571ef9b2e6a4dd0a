"""Model providers: the chat schema, the registry, provider adapters and offline clients."""

from __future__ import annotations

from .anthropic_client import AnthropicClient
from .base import ModelClient
from .hub import ModelHub
from .openai_client import OpenAIClient
from .recorded import RecordedClient, RecordedSet, SimulatedClient
from .registry import ModelInfo, ModelRegistry, ProviderConfig, RegistryError
from .retrying import ProviderError
from .scripted import Script, ScriptedClient
from .types import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage

__all__ = [
    "AnthropicClient",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ModelClient",
    "ModelHub",
    "ModelInfo",
    "ModelRegistry",
    "OpenAIClient",
    "ProviderConfig",
    "ProviderError",
    "RecordedClient",
    "RecordedSet",
    "RegistryError",
    "Script",
    "ScriptedClient",
    "SimulatedClient",
    "ToolCall",
    "ToolSpec",
    "Usage",
]
