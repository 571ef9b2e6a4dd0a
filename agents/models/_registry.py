"""The model registry: which provider serves a model id, under which name, at what price.

Read from a TOML file::

    [providers.openai]
    kind = "openai"                  # openai | anthropic | recorded | simulated, or a
                                     # kind a plugin registers in orch.models
    api_key_env = "OPENAI_API_KEY"   # the key is read from the environment, never the file
    max_concurrency = 8              # calls in flight to this provider
    timeout = 60.0                   # seconds per attempt
    max_retries = 4                  # on 429, 5xx and timeouts only

    [providers.local]
    kind = "openai"                  # any OpenAI-compatible server (vLLM, llama.cpp, Ollama)
    base_url = "http://127.0.0.1:8080/v1"

    [models."gpt-4o-mini"]
    provider = "openai"
    name = "gpt-4o-mini"             # the provider's own model name
    input_per_mtok = 0.15            # USD per million input tokens
    output_per_mtok = 0.60
    context = 128000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import RegistryError
from agents.models._types import Usage

__all__ = ["ModelInfo", "ModelRegistry", "ProviderConfig"]

_STRICT = ConfigDict(frozen=True, extra="forbid")


class ProviderConfig(BaseModel):
    model_config = _STRICT
    kind: str = Field(min_length=1)
    """The client that serves the provider: a name in the ``orch.models`` entry-point group
    (built in: ``openai``, ``anthropic``, ``recorded``, ``simulated``)."""
    base_url: str | None = None
    api_key_env: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific settings (the recorded client's data file, say)."""


class ModelInfo(BaseModel):
    model_config = _STRICT
    id: str
    provider: str
    name: str
    input_per_mtok: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    context: int | None = Field(default=None, gt=0)

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` at this model's prices."""
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / 1_000_000


class ModelRegistry:
    """Model ids -> :class:`ModelInfo`, provider names -> :class:`ProviderConfig`."""

    def __init__(
        self, providers: Mapping[str, ProviderConfig], models: Mapping[str, ModelInfo]
    ) -> None:
        self.providers = dict(providers)
        self.models = dict(models)
        for m in self.models.values():
            if m.provider not in self.providers:
                raise RegistryError(
                    f"model {m.id!r} names provider {m.provider!r}, which is not defined "
                    f"(providers: {', '.join(sorted(self.providers)) or 'none'}); fix: add "
                    f"[providers.{m.provider}] or correct the name"
                )

    def model(self, model_id: str) -> ModelInfo:
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise RegistryError(
                f"unknown model {model_id!r} (registry has: {known}); fix: add "
                f'[models."{model_id}"] to the registry file'
            ) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "registry") -> ModelRegistry:
        unknown = sorted(set(data) - {"providers", "models"})
        if unknown:
            raise RegistryError(
                f"{source}: unknown section(s) {unknown}; fix: use [providers.*] and [models.*]"
            )
        providers: dict[str, ProviderConfig] = {}
        models: dict[str, ModelInfo] = {}
        for section, target, model_cls in (
            ("providers", providers, ProviderConfig),
            ("models", models, ModelInfo),
        ):
            for name, cfg in data.get(section, {}).items():
                entry = cfg if model_cls is ProviderConfig else {"id": name, **cfg}
                try:
                    target[name] = model_cls.model_validate(entry)  # type: ignore[assignment]
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    raise RegistryError(
                        f'{source}: [{section}."{name}"] {where}: {err["msg"]}; fix: correct '
                        "that entry"
                    ) from None
        return cls(providers, models)

    @classmethod
    def load(cls, path: str | Path) -> ModelRegistry:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise RegistryError(
                f"cannot read model registry {str(path)!r}: {exc.strerror}"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(
                f"model registry {str(path)!r} is not valid TOML: {exc}; fix: correct the file"
            ) from exc
        return cls.from_dict(data, str(path))
