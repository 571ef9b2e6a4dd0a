"""Test helpers for pipelines that call models: a model hub of scripted models.

Shipped as a pytest plugin (entry point ``pytest11``, name ``orch-agents``) beside orch's own
(:mod:`orch.testing.pytest_plugin`), because the engine must not import the package that
provides models. Fixture:

* ``scripted_models``: the factory :func:`scripted_hub`, so a test writes
  ``hub = scripted_models({"gpt": "B", "judge": "Response 1"})`` and runs its pipeline with
  ``services={"models": hub}``.

Each call is still a recorded effect of the step that makes it (the hub records it), so a
run on scripted models verifies and replays like any other. Nothing here reaches a network,
and nothing here may be used by a real run. A pytest11 plugin is imported by every pytest
session of the environment, so the model package is imported only when a hub is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

import pytest

if TYPE_CHECKING:
    from agents.models import ChatRequest, ChatResponse, ModelHub, ModelInfo

__all__ = ["SCRIPTED_PROVIDER", "Reply", "scripted_hub", "scripted_models"]

SCRIPTED_PROVIDER = "scripted"
"""The provider name of every scripted model: ``hub.client(SCRIPTED_PROVIDER).calls`` lists
the calls made, as (model name, request), in call order."""

Reply: TypeAlias = "str | Sequence[str] | Callable[[ChatRequest], str | ChatResponse]"
"""What a scripted model answers: one text for every call; a list of texts, one per
``request.sample`` (0, 1, ...); or a function of the request returning the text or a whole
``ChatResponse`` (it may raise to act as a failing provider)."""


def scripted_hub(
    replies: Mapping[str, Reply],
    *,
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> ModelHub:
    """A :class:`~agents.models.ModelHub` whose models (the keys of ``replies``) answer from
    ``replies``. ``prices`` gives a model's (input, output) USD per million tokens, so that
    cost-aware code sees non-zero, deterministic costs (token counts come from text lengths).
    """
    from agents.models import ModelHub, ModelRegistry, ScriptedClient

    for model, reply in replies.items():
        if not (
            isinstance(reply, str)
            or callable(reply)
            or (isinstance(reply, Sequence) and all(isinstance(r, str) for r in reply))
        ):
            raise ValueError(
                f"scripted model {model!r}: its reply is a {type(reply).__name__}; fix: give a "
                "text, a list of texts (one per sample) or a function of the request"
            )
    unpriced = sorted(set(prices or {}) - set(replies))
    if unpriced:
        raise ValueError(
            f"prices name models with no scripted replies: {unpriced}; fix: add them to "
            "replies, or remove their prices"
        )
    models: dict[str, dict[str, object]] = {}
    for model in replies:
        entry: dict[str, object] = {"provider": SCRIPTED_PROVIDER, "name": model}
        if prices and model in prices:
            entry["input_per_mtok"], entry["output_per_mtok"] = prices[model]
        models[model] = entry
    registry = ModelRegistry.from_dict(
        # The kind is never used: the hub is handed the scripted client for this provider.
        {"providers": {SCRIPTED_PROVIDER: {"kind": "simulated"}}, "models": models},
        source="scripted models",
    )
    table = dict(replies)

    def script(request: ChatRequest, model: ModelInfo) -> str | ChatResponse:
        reply = table[model.id]
        if isinstance(reply, str):
            return reply
        if callable(reply):
            return reply(request)
        if request.sample < len(reply):
            return reply[request.sample]
        raise LookupError(
            f"scripted model {model.id!r} has {len(reply)} replies, none for sample "
            f"{request.sample}; fix: give it a reply per sample the pipeline asks for"
        )

    return ModelHub(registry, clients={SCRIPTED_PROVIDER: ScriptedClient(script)})


@pytest.fixture
def scripted_models() -> Callable[..., ModelHub]:
    """The factory :func:`scripted_hub`: ``scripted_models({"model-id": reply, ...},
    prices=None) -> ModelHub``; pass the hub as ``services={"models": hub}``."""
    return scripted_hub
