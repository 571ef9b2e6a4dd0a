"""The model hub: the registry plus one client per provider, and the recorded ``chat`` call.

Agents call models through ``ctx.service("models").chat(ctx, request)``: the request is
recorded as an effect (replayable, resumable), its usage and cost (from the registry's prices)
go into the effect record, and the live call goes to the provider the registry names. The hub
holds API keys only inside its clients: nothing it records contains one.

Provider kinds are pluggable: the ``kind`` of a ``[providers.NAME]`` entry is a name in the
``orch.models`` entry-point group, whose target makes the client (``factory(provider_name,
ProviderConfig) -> ModelClient``, a client class usually). orch registers its own kinds
(``openai``, ``anthropic``, ``recorded``, ``simulated``) in its ``pyproject.toml``; another
package adds one the same way::

    [project.entry-points."orch.models"]
    my-provider = "my_pkg.client:MyClient"

A hub checks that every kind its registry names is installed when it is made (reading the
entry points' names only), and imports a kind's factory the first time it needs a client of
that kind, so that a broken or slow plugin costs nothing until it is used. This module must
never import a provider SDK itself: only the factories do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path

from agents.errors import RegistryError
from agents.models._base import ModelClient
from agents.models._registry import ModelRegistry, ProviderConfig
from agents.models._types import ChatRequest, ChatResponse
from orch import Context, find_entry_point, load_entry_point, plugin_package
from orch.errors import PluginError

__all__ = [
    "PROVIDER_GROUP",
    "ClientFactory",
    "ModelHub",
    "client_factory",
    "provider_kinds",
    "text_chunks",
]

PROVIDER_GROUP = "orch.models"
"""Entry-point group of model provider kinds: ``kind = "pkg.module:factory"``."""

ClientFactory = Callable[[str, ProviderConfig], ModelClient]
"""Makes the client of one provider from its name and its registry entry."""


_WORD = re.compile(r"\s*\S+\s*|\s+")


def text_chunks(response: ChatResponse) -> list[str]:
    """A recorded answer's text cut into words, each with the spaces after it (and the text's
    leading spaces on the first): what a replayed or resumed call streams to a listener as
    its ``token`` events. A function of the text alone, so a replay streams the same chunks
    every time; they join back to the text exactly."""
    return _WORD.findall(response.text)


def provider_kinds() -> list[str]:
    """The provider kinds installed packages register in ``orch.models``, sorted (their
    names only: nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group=PROVIDER_GROUP)})


def _unknown_kind(kind: str, provider: str, kinds: list[str]) -> RegistryError:
    if not kinds:
        installed = "none are installed: is orch itself installed (pip install orch)?"
    else:
        installed = f"installed: {', '.join(kinds)}"
    return RegistryError(
        f"provider {provider!r} has kind {kind!r}, which no installed package provides "
        f"({installed}); fix: correct kind in [providers.{provider}], or install the package "
        f"that registers {kind!r} in the {PROVIDER_GROUP} entry-point group"
    )


def client_factory(kind: str, provider: str = "") -> ClientFactory:
    """Import the factory of provider kind ``kind`` from its ``orch.models`` entry point.

    An unknown kind is a :class:`~agents.errors.RegistryError` naming the installed ones; a
    kind two packages register, or one whose module fails to import, is a
    :class:`~orch.errors.PluginError` naming the package. ``provider`` names the registry
    entry in messages."""
    ep = find_entry_point(PROVIDER_GROUP, kind, what="provider kind")
    if ep is None:
        raise _unknown_kind(kind, provider or kind, provider_kinds())
    factory = load_entry_point(ep, what="provider kind")
    if not callable(factory):
        raise PluginError(
            f"provider kind {kind!r} ({PROVIDER_GROUP}) from package {plugin_package(ep)} "
            f"points at {ep.value}, which is not callable; fix: report it to the package's "
            "maintainers"
        )
    made: ClientFactory = factory
    return made


class ModelHub:
    """Resolves model ids to clients and records every call as an effect.

    ``clients`` gives ready clients by provider name (a scripted client in a test, say); the
    others are made on first use by the factory of their kind (``orch.models``)."""

    def __init__(
        self, registry: ModelRegistry, clients: Mapping[str, ModelClient] | None = None
    ) -> None:
        self.registry = registry
        self._clients: dict[str, ModelClient] = dict(clients or {})
        needed = {
            name: config.kind
            for name, config in sorted(registry.providers.items())
            if name not in self._clients
        }
        if needed:
            kinds = provider_kinds()
            for name, kind in needed.items():
                if kind not in kinds:
                    raise _unknown_kind(kind, name, kinds)

    @classmethod
    def load(cls, path: str | Path) -> ModelHub:
        return cls(ModelRegistry.load(path))

    def client(self, provider: str) -> ModelClient:
        """The client of ``provider``, made by its kind's factory the first time."""
        client = self._clients.get(provider)
        if client is not None:
            return client
        config = self.registry.providers.get(provider)
        if config is None:
            known = ", ".join(sorted(self.registry.providers)) or "none"
            raise RegistryError(
                f"unknown provider {provider!r} (registry has: {known}); fix: add "
                f"[providers.{provider}] to the registry file"
            )
        made = client_factory(config.kind, provider)(provider, config)
        if not isinstance(made, ModelClient):
            raise PluginError(
                f"provider kind {config.kind!r} ({PROVIDER_GROUP}) made a "
                f"{type(made).__name__!r}, which is not a ModelClient (it needs provider, "
                "complete and aclose); fix: report it to the maintainers of the package that "
                "registers the kind"
            )
        self._clients[provider] = made
        return made

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Call the model now, unrecorded (for tools and tests; agents use :meth:`chat`)."""
        info = self.registry.model(request.model)
        return await self.client(info.provider).complete(request, info)

    async def chat(self, ctx: Context, request: ChatRequest) -> ChatResponse:
        """Call the model as a recorded effect of the current step.

        When the run has a listener (``orch.stream``, ``arun(on_event=...)``) the adapter
        streams the call and the listener gets its text as ``token`` events as it arrives; a
        call served from a record (replay, resume) streams its recorded text again, cut by
        :func:`text_chunks`. The record is the same either way."""
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
            rechunk=text_chunks,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
