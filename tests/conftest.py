"""Shared fixtures: installing the test plugin packages into a scratch site directory."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PLUGINS = FIXTURES / "plugins"


def install_plugin(source: Path, site: Path) -> None:
    """Install a plugin project the way pip lays it out: its package and a dist-info with
    METADATA and entry_points.txt, both found by importlib.metadata on sys.path."""
    meta = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    name, version = meta["name"], meta["version"]
    for pkg in source.iterdir():
        if pkg.is_dir() and (pkg / "__init__.py").exists():
            shutil.copytree(pkg, site / pkg.name)
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in eps.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory on sys.path with orch-demo-plugin and orch-broken-plugin installed."""
    site = tmp_path / "site"
    site.mkdir()
    for project in sorted(PLUGINS.iterdir()):
        install_plugin(project, site)
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the backend orch targets)."""
    return "asyncio"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test under anyio's plugin without a marker on each.

    Marked as the function is collected, before parametrization, so that a parametrized
    async test gets anyio's backend parameter too (a marker added after collection would be
    too late for it)."""
    import inspect

    if (
        isinstance(collector, pytest.Module | pytest.Class)
        and collector.funcnamefilter(name)
        and inspect.iscoroutinefunction(obj)
    ):
        pytest.mark.anyio(obj)
