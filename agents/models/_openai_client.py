"""OpenAI chat completions through the ``openai`` SDK, for OpenAI and any compatible server.

Non-streaming and streaming requests, JSON-schema structured output, and tool calls, mapped
to the provider-neutral types. A call streams when its request asks for it or when someone
listens to the run (``orch.wants_deltas()``), and then hands each text delta to the listener
(``orch.stream_delta``); either way it returns the same :class:`ChatResponse` for the same
answer, so the record does not depend on who listened. Retries (429 with retry-after, 5xx,
timeouts) are ours, see :mod:`agents.models._retrying`; the SDK's are switched off. A
per-provider limiter bounds the requests in flight.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import openai

from agents.errors import ProviderError
from agents.models._base import api_key
from agents.models._registry import ModelInfo, ProviderConfig
from agents.models._retrying import classify, with_retries
from agents.models._types import ChatMessage, ChatRequest, ChatResponse, ToolCall, Usage
from orch import stream_delta, wants_deltas

__all__ = ["OpenAIClient"]


def _message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def request_params(request: ChatRequest, model: ModelInfo) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for ``request``."""
    params: dict[str, Any] = {
        "model": model.name,
        "messages": [_message(m) for m in request.messages],
        "max_tokens": request.max_tokens,
    }
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    if request.output_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.output_name,
                "schema": request.output_schema,
                "strict": True,
            },
        }
    return params


class OpenAIClient:
    """A :class:`~agents.models._base.ModelClient` over the OpenAI chat completions API."""

    def __init__(self, provider: str, config: ProviderConfig) -> None:
        self.provider = provider
        self.config = config
        self._client = openai.AsyncOpenAI(
            api_key=api_key(provider, config, "OPENAI_API_KEY"),
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
                if request.stream or wants_deltas():
                    return await self._stream(params)
                resp = await self._client.chat.completions.create(**params)
                return self._response(resp)

        tries = [0]
        try:
            response = await with_retries(
                attempt, max_retries=self.config.max_retries, attempts=tries
            )
        except openai.APIStatusError as exc:
            raise ProviderError(
                self.provider,
                model.id,
                status_message(exc),
                status=exc.status_code,
                retryable=classify(exc),
                attempts=tries[0],
            ) from exc
        except (openai.APIError, TimeoutError) as exc:
            raise ProviderError(
                self.provider,
                model.id,
                f"{type(exc).__name__}: {exc}",
                retryable=classify(exc),
                attempts=tries[0],
            ) from exc
        except ValueError as exc:  # the SDK could not parse the body
            raise ProviderError(
                self.provider, model.id, f"malformed response ({exc})", attempts=tries[0]
            ) from exc
        return structured_output(self.provider, model, request, response)

    @staticmethod
    def _response(resp: Any) -> ChatResponse:
        if not getattr(resp, "choices", None):
            raise openai.APIResponseValidationError(
                response=getattr(resp, "_response", None),  # type: ignore[arg-type]
                body=None,
                message="the response has no choices",
            )
        choice = resp.choices[0]
        msg = choice.message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (msg.tool_calls or [])
        ]
        usage = resp.usage
        return ChatResponse(
            text=msg.content or "",
            tool_calls=calls,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=choice.finish_reason or "",
            provider_model=resp.model or "",
        )

    async def _stream(self, params: dict[str, Any]) -> ChatResponse:
        stream = await self._client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        listening = wants_deltas()
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = ""
        usage = Usage()
        provider_model = ""
        async for chunk in stream:
            provider_model = chunk.model or provider_model
            if chunk.usage is not None:
                usage = Usage(
                    input_tokens=chunk.usage.prompt_tokens,
                    output_tokens=chunk.usage.completion_tokens,
                )
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    if listening:
                        stream_delta(delta.content)
                        # Chunks that came in one read are all decoded before this task
                        # yields: let the run's consumer take each token as it is decoded.
                        await anyio.lowlevel.checkpoint()
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
                if choice.finish_reason:
                    finish = choice.finish_reason
        return ChatResponse(
            text="".join(text),
            tool_calls=[ToolCall(**calls[i]) for i in sorted(calls)],
            usage=usage,
            finish_reason=finish,
            provider_model=provider_model,
        )


def status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))


def structured_output(
    provider: str, model: ModelInfo, request: ChatRequest, response: ChatResponse
) -> ChatResponse:
    if request.output_schema is None or response.tool_calls:
        return response
    try:
        parsed = json.loads(response.text)
    except ValueError as exc:
        raise ProviderError(
            provider,
            model.id,
            f"structured output requested but the answer is not JSON ({exc}): "
            f"{response.text[:200]!r}",
        ) from exc
    return response.model_copy(update={"structured": parsed})
