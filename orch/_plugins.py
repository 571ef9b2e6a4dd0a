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

__all__ = ["AGENT_GROUPS", "GROUP_PREFIX", "PluginInfo", "list_plugins", "load_agent"]

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


def _instantiate(ep: EntryPoint) -> Agent[Any, Any]:
    package, version = _dist(ep)
    label = f"plugin {ep.name!r} ({ep.group}) from package {package} {version}".rstrip()
    try:
        target = ep.load()
    except Exception as exc:
        raise PluginError(
            f"{label} failed to load: {type(exc).__name__}: {exc}; fix: reinstall or upgrade "
            f"{package}, or uninstall it"
        ) from exc
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


def _load(ep: EntryPoint) -> None:
    package, version = _dist(ep)
    try:
        ep.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {ep.name!r} ({ep.group}) from package {package} {version} failed to "
            f"load: {type(exc).__name__}: {exc}; fix: reinstall or upgrade {package}, or "
            "uninstall it"
        ) from exc


def list_plugins() -> list[PluginInfo]:
    """Every installed entry point of an ``orch.*`` group, loaded to tell whether it works
    (an agent or router is also made, to name the agent it gives)."""
    infos = []
    for ep in _orch_entry_points():
        package, version = _dist(ep)
        try:
            agent = _instantiate(ep) if ep.group in AGENT_GROUPS else None
            if agent is None:
                _load(ep)
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
