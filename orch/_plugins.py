"""Plugin discovery through entry points: agents and routers from other packages.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."orch.agents"]
    my_agent = "my_pkg.agents:MyAgent"

The target may be an :class:`~orch._agent.Agent` instance, an Agent subclass (made with no
arguments) or a function returning an Agent. Loading is lazy: a broken plugin must never break
``import orch``; it becomes a :class:`~orch.errors.PluginError` naming its package when used,
and shows as broken in ``orch plugins``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions, entry_points
from typing import Any

from orch._agent import Agent
from orch.errors import PluginError

__all__ = [
    "AGENT_GROUPS",
    "GROUP_PREFIX",
    "PluginInfo",
    "find_entry_point",
    "list_plugins",
    "load_agent",
    "load_entry_point",
    "plugin_package",
]

AGENT_GROUPS = ("orch.agents", "orch.routers")
GROUP_PREFIX = "orch."
"""Every entry-point group orch reads starts with this: ``orch.agents`` and ``orch.routers``
(agents by name), ``orch.cli`` (commands), ``orch.services`` (service factories),
``orch.reports`` (report renderers by file format), ``orch.stores`` (store schemes), and
the groups orch's other packages read: ``orch.models`` (model providers, ``agents``) and
``orch.datasets`` (dataset adapters, ``routers``). ``orch plugins`` lists them all."""


@dataclass(frozen=True)
class PluginInfo:
    """One entry point as seen by ``orch plugins``."""

    name: str
    group: str
    target: str
    package: str
    version: str
    ok: bool
    agent: str = ""
    """``name@version`` of the agent it gives, when it loads."""
    error: str = ""


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "(unknown package)", ""
    return dist.metadata["Name"] or dist.name, dist.version


def plugin_package(ep: EntryPoint) -> str:
    """``NAME VERSION`` of the installed package an entry point comes from."""
    return " ".join(_dist(ep)).rstrip()


def find_entry_point(
    group: str, name: str, *, what: str = "plugin", error: type[PluginError] = PluginError
) -> EntryPoint | None:
    """The entry point called ``name`` in ``group`` (nothing is imported), or None when no
    installed package offers it; ``error`` (a :class:`~orch.errors.PluginError`) when several
    do. Every group orch and its packages read looks names up here; ``what`` names the kind
    of thing in the message (``dataset``, ``provider kind``)."""
    found = sorted(
        (ep for ep in entry_points(group=group) if ep.name == name), key=lambda ep: ep.value
    )
    if len(found) > 1:
        offers = "; ".join(f"{plugin_package(ep)}: {ep.value}" for ep in found)
        raise error(
            f"{what} {name!r} ({group}) is offered by several plugins ({offers}); fix: "
            "uninstall all but one"
        )
    return found[0] if found else None


def load_entry_point(
    ep: EntryPoint, *, what: str = "plugin", error: type[PluginError] = PluginError
) -> Any:
    """What ``ep`` points at, imported; ``error`` naming its package when that fails (a
    broken plugin never takes more than its own name down)."""
    try:
        return ep.load()
    except Exception as exc:
        package = plugin_package(ep)
        raise error(
            f"{what} {ep.name!r} ({ep.group}) from package {package} failed to load: "
            f"{type(exc).__name__}: {exc}; fix: reinstall or upgrade that package, or "
            "uninstall it"
        ) from exc


def _instantiate(ep: EntryPoint) -> Agent[Any, Any]:
    package, version = _dist(ep)
    label = f"plugin {ep.name!r} ({ep.group}) from package {package} {version}".rstrip()
    target = load_entry_point(ep)
    try:
        if isinstance(target, Agent):
            agent = target
        elif (inspect.isclass(target) and issubclass(target, Agent)) or callable(target):
            agent = target()
        else:
            agent = target
    except Exception as exc:
        raise PluginError(
            f"{label} failed to create its agent: {type(exc).__name__}: {exc}; fix: report it "
            f"to the maintainers of {package}"
        ) from exc
    if not isinstance(agent, Agent):
        raise PluginError(
            f"{label} points at {ep.value}, which gives a {type(agent).__name__}, not an "
            f"orch Agent; fix: report it to the maintainers of {package}"
        )
    return agent


def _entry_points() -> list[EntryPoint]:
    found: list[EntryPoint] = []
    for group in AGENT_GROUPS:
        found.extend(entry_points(group=group))
    return sorted(found, key=lambda ep: (ep.group, ep.name, ep.value))


def load_agent(name: str) -> tuple[Agent[Any, Any], tuple[str, str] | None]:
    """Load the plugin agent called ``name``: (agent, (package, version))."""
    matches = [ep for ep in _entry_points() if ep.name == name]
    if not matches:
        installed = ", ".join(sorted({ep.name for ep in _entry_points()})) or "none installed"
        raise PluginError(
            f"no plugin agent named {name!r} (plugins: {installed}); fix: install the package "
            "that provides it (see 'orch plugins')"
        )
    packages = sorted({_dist(ep) for ep in matches})
    if len(packages) > 1:
        names = ", ".join(f"{p} {v}" for p, v in packages)
        raise PluginError(
            f"plugin agent name {name!r} is provided by several packages ({names}); fix: "
            "uninstall all but one"
        )
    return _instantiate(matches[0]), packages[0]


def _orch_entry_points() -> list[EntryPoint]:
    """Every entry point of every ``orch.*`` group, whoever reads the group."""
    # Groups first (from every distribution's metadata), then entry_points(group=...), which
    # keeps one distribution per name as the interpreter would import it.
    groups = {
        ep.group
        for dist in distributions()
        for ep in dist.entry_points
        if ep.group.startswith(GROUP_PREFIX)
    }
    found = [ep for group in groups for ep in entry_points(group=group)]
    return sorted(found, key=lambda ep: (ep.group, ep.name, ep.value))


def list_plugins() -> list[PluginInfo]:
    """Every installed entry point of an ``orch.*`` group, loaded to tell whether it works
    (an agent or router is also made, to name the agent it gives)."""
    infos = []
    for ep in _orch_entry_points():
        package, version = _dist(ep)
        try:
            agent = _instantiate(ep) if ep.group in AGENT_GROUPS else None
            if agent is None:
                load_entry_point(ep)
        except PluginError as exc:
            infos.append(
                PluginInfo(ep.name, ep.group, ep.value, package, version, False, error=str(exc))
            )
        else:
            infos.append(
                PluginInfo(
                    ep.name,
                    ep.group,
                    ep.value,
                    package,
                    version,
                    True,
                    agent="" if agent is None else f"{agent.name}@{agent.version}",
                )
            )
    return infos
