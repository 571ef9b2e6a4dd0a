"""The provider-neutral chat schema: what a step asks a model and what it gets back.

A :class:`ChatRequest` is what gets hashed and recorded, so it holds everything that decides
the answer (model id, messages, sampling parameters, tools, output schema) and nothing that
does not (API keys, timeouts, retry settings, base URLs live in the client). A
:class:`ChatResponse` is the same for every provider: text, optional structured output,
tool calls, token usage and the finish reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ToolCall(BaseModel):
    """A call the model asks for: ``arguments`` is the JSON text the model wrote."""

    model_config = _FROZEN
    id: str
    name: str
    arguments: str


class ChatMessage(BaseModel):
    model_config = _FROZEN
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """On an assistant message: the calls it made."""
    tool_call_id: str | None = None
    """On a tool message: which call this is the result of."""


class ToolSpec(BaseModel):
    """A tool the model may call: a name, a description and a JSON schema of its arguments."""

    model_config = _FROZEN
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ChatRequest(BaseModel):
    model_config = _FROZEN
    model: str
    """Model id as the registry knows it (the provider's own name is looked up there)."""
    messages: list[ChatMessage]
    temperature: float | None = None
    max_tokens: int = 1024
    tools: list[ToolSpec] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    """A JSON schema the answer must follow (structured output)."""
    output_name: str = "answer"
    stream: bool = False
    """Ask the provider to stream; the response is assembled before it is returned."""
    sample: int = 0
    """Which sample this is when a step asks the same thing several times (self-consistency):
    part of the request so that samples are distinct effects with distinct records."""


class Usage(BaseModel):
    model_config = _FROZEN
    input_tokens: int = 0
    output_tokens: int = 0


class ChatResponse(BaseModel):
    model_config = _FROZEN
    text: str = ""
    structured: Any = None
    """The parsed JSON answer when the request gave an ``output_schema``."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = ""
    provider_model: str = ""
    """The model name the provider reported."""
