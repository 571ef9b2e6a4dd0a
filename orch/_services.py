"""The services a pipeline's agents reach through ``ctx.service``, for a command or a page
that runs a pipeline file: the file's own ``services``, plus the model hub that
``--models REGISTRY`` or ``$ORCH_MODELS`` names, built by the factory the ``orch.services``
entry-point group registers as ``models`` (the engine does not import the package that
provides it, ``agents``). And :func:`with_services`, which closes them in the loop that used
them.

Moved here from ``orch.cli.common`` (which re-exports every name) so that ``orch ui``'s
replay, which must not import the CLI, builds a run's services exactly as ``orch replay``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orch._loader import load_services
from orch._plugins import find_entry_point, load_entry_point
from orch.errors import CliError

__all__ = ["SERVICE_GROUP", "command_services", "service_factory", "with_services"]

T = TypeVar("T")

SERVICE_GROUP = "orch.services"
"""Entry-point group of service factories: ``name = "pkg.module:factory"``, where
``factory(location: str)`` returns the service (``models`` builds the model hub)."""


def service_factory(name: str) -> Callable[[str], Any]:
    """The factory of service ``name`` from the ``orch.services`` entry points."""
    ep = find_entry_point(SERVICE_GROUP, name, what="service")
    if ep is None:
        raise CliError(
            f"no installed package provides the {name!r} service (entry-point group "
            f"{SERVICE_GROUP})",
            "install orch with its agents package (pip install orch), or a plugin that "
            f"registers {name!r} in {SERVICE_GROUP}",
        )
    factory: Callable[[str], Any] = load_entry_point(ep, what="service")
    return factory


def command_services(target: str, models: str | None) -> dict[str, Any]:
    """The pipeline file's services, with the model hub from --models / $ORCH_MODELS."""
    services = load_services(target)
    registry = models or os.environ.get("ORCH_MODELS")
    if registry:
        services["models"] = service_factory("models")(registry)
    return services


async def with_services(services: dict[str, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` and then close every service that can be closed, in the same loop."""
    try:
        return await call()
    finally:
        for service in services.values():
            close = getattr(service, "aclose", None)
            if close is not None:
                await close()
