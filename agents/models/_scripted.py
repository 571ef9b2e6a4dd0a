"""A scripted model client: answers computed by a Python function, for tests and examples.

Unlike :class:`~agents.models._recorded.RecordedClient`, which serves responses captured from
real providers, a scripted client answers whatever its function says, so a test can drive a
router down every branch (agreeing probes, a malformed router reply, a judge that picks
response 2) without a network or a recording. Token counts are derived from the text lengths
(about four characters per token), so costs are non-zero and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agents.models._registry import ModelInfo
from agents.models._types import ChatRequest, ChatResponse, Usage

__all__ = ["ScriptedClient", "Script"]

Script = Callable[[ChatRequest, ModelInfo], "str | ChatResponse"]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedClient:
    """A :class:`~agents.models._base.ModelClient` whose replies come from ``script``.

    ``script(request, model)`` returns the reply text (or a whole ``ChatResponse``). It may
    raise to simulate a provider failure. ``calls`` lists (model name, request) in call order.
    """

    provider = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[tuple[str, ChatRequest]] = []

    @classmethod
    def table(cls, replies: Mapping[tuple[str, int], str]) -> ScriptedClient:
        """Replies by (model name, sample index); a missing entry is a clear error."""

        def script(request: ChatRequest, model: ModelInfo) -> str:
            try:
                return replies[(model.name, request.sample)]
            except KeyError:
                raise LookupError(
                    f"scripted client has no reply for model {model.name!r} sample "
                    f"{request.sample}; fix: add ({model.name!r}, {request.sample}) to the table"
                ) from None

        return cls(script)

    async def complete(self, request: ChatRequest, model: ModelInfo) -> ChatResponse:
        self.calls.append((model.name, request))
        reply = self.script(request, model)
        if isinstance(reply, ChatResponse):
            return reply
        prompt = "".join(m.content or "" for m in request.messages)
        return ChatResponse(
            text=reply, usage=Usage(input_tokens=_tokens(prompt), output_tokens=_tokens(reply))
        )

    async def aclose(self) -> None:
        return None
