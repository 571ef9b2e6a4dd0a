"""Shared fixtures: installing the test plugin packages into a scratch site directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_install import install_plugin

FIXTURES = Path(__file__).parent / "fixtures"
PLUGINS = FIXTURES / "plugins"


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
