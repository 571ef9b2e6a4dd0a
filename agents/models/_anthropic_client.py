"""Anthropic messages through the ``anthropic`` SDK: text, tool use and streaming.

System messages become the ``system`` parameter; tool results become ``tool_result`` blocks
of a user turn, as the Messages API wants. Structured output is asked for with a forced tool
whose input schema is the output schema (the Messages API's way to constrain JSON), and read
back from that tool call. Retries and the concurrency limit are the shared ones. A call
streams when its request asks for it or when someone listens to the run
(``orch.wants_deltas()``), handing each text delta to the listener (``orch.stream_delta``);
the message it returns is the same either way.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import anyio
import anyio.lowlevel

from agents.errors import ProviderError
from agents.models._base import api_key
from agents.models._openai_client import status_message, structured_output
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._retrying import classify, with_retries
from agents.models._types import ChatRequest, ChatResponse, ToolCall, Usage
from orch import stream_delta, wants_deltas

__all__ = ["AnthropicClient"]


def request_params(request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` for ``request``."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if (
                messages
                and messages[-1]["role"] == "user"
                and isinstance(messages[-1]["content"], list)
            ):
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
            continue
        if m.role == "assistant" and m.tool_calls:
            content: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            content.extend(
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": json.loads(c.arguments or "{}"),
                }
                for c in m.tool_calls
            )
            messages.append({"role": "assistant", "content": content})
            continue
        messages.append({"role": m.role, "content": m.content})
    params: dict[str, Any] = {
        "model": model.name,
        "messages": messages,
        "max_tokens": request.max_tokens,
    }
    if system:
        params["system"] = system
    if request.temperature is not None:
        # Sent as a raw body field: recent SDK versions dropped the sampling keywords from
        # messages.create, while models that take them still read them from the body.
        params["extra_body"] = {"temperature": request.temperature}
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters}
        for t in request.tools
    ]
    if request.output_schema is not None:
        tools.append(
            {
                "name": request.output_name,
                "description": "Give the final answer in this form.",
                "input_schema": request.output_schema,
            }
        )
        params["tool_choice"] = {"type": "tool", "name": request.output_name}
    if tools:
        params["tools"] = tools
    return params


class AnthropicClient:
    """A :class:`~agents.models._base.ModelClient` over the Anthropic Messages API."""

    def __init__(self, provider: str, config: ProviderConfig) -> None:
        self.provider = provider
        self.config = config
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key(provider, config, "ANTHROPIC_API_KEY"),
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,
        )
        self._limit = anyio.CapacityLimiter(config.max_concurrency)

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        params = request_params(request, model)

        async def attempt() -> ChatResponse:
            async with self._limit:
                listening = wants_deltas()
                if request.stream or listening:
                    async with self._client.messages.stream(**params) as stream:
                        async for event in stream:
                            # A text delta (a tool's input is not text).
                            if listening and event.type == "text":
                                stream_delta(event.text)
                                # Let the run's consumer take it before the next event that
                                # came in the same read is decoded.
                                await anyio.lowlevel.checkpoint()
                        message = await stream.get_final_message()
                else:
                    message = await self._client.messages.create(**params)
                return _response(message, request)

        tries = [0]
        try:
            response = await with_retries(
                attempt, max_retries=self.config.max_retries, attempts=tries
            )
        except anthropic.APIStatusError as exc:
            raise ProviderError(
                self.provider,
                model.id,
                status_message(exc),
                status=exc.status_code,
                retryable=classify(exc),
                attempts=tries[0],
            ) from exc
        except (anthropic.APIError, TimeoutError) as exc:
            raise ProviderError(
                self.provider,
                model.id,
                f"{type(exc).__name__}: {exc}",
                retryable=classify(exc),
                attempts=tries[0],
            ) from exc
        except ValueError as exc:
            raise ProviderError(
                self.provider, model.id, f"malformed response ({exc})", attempts=tries[0]
            ) from exc
        if request.output_schema is not None and response.structured is None:
            return structured_output(self.provider, model, request, response)
        return response


def _response(message: Any, request: ChatRequest) -> ChatResponse:
    texts: list[str] = []
    calls: list[ToolCall] = []
    structured: Any = None
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            if request.output_schema is not None and block.name == request.output_name:
                structured = block.input
            else:
                calls.append(
                    ToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input))
                )
    usage = message.usage
    return ChatResponse(
        text="".join(texts) if structured is None else json.dumps(structured, sort_keys=True),
        structured=structured,
        tool_calls=calls,
        usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
        finish_reason=message.stop_reason or "",
        provider_model=message.model or "",
    )
