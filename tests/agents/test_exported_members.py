"""Each ``agents`` package's ``__all__`` is exactly its public face (as httpx tests its own).

A public name is one the package's ``__init__`` defines or imports that does not start with
``_``; submodules are reached as attributes but are not names of the face, and names the
package loads on first use (``agents.tools.tool_agent``) are in ``__all__`` and resolve.
"""

from __future__ import annotations
import __future__

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ["agents", "agents.models", "agents.tools"]


def public_names(package: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)  # `from __future__ import annotations`
    }


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_every_public_name_once(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = public_names(package) - set(exported)
    assert not missing, f"{name} defines or imports {sorted(missing)} without exporting them"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    package = importlib.import_module(name)
    stale = [member for member in package.__all__ if not hasattr(package, member)]
    assert not stale, f"{name}.__all__ names {stale}, which it does not have"
    for member in package.__all__:
        value = getattr(package, member)
        assert not inspect.ismodule(value), f"{name}.{member} is a module, not a name"
        # Everything exported is defined inside the agents package (errors included).
        origin = getattr(value, "__module__", None)
        if origin is not None and (inspect.isclass(value) or inspect.isfunction(value)):
            assert origin == "agents" or origin.startswith("agents."), (name, member, origin)


def test_the_top_face_is_the_errors_module() -> None:
    import agents
    import agents.errors

    assert set(agents.__all__) == set(agents.errors.__all__)


def test_every_exception_of_the_package_is_in_its_errors_module() -> None:
    """One errors module: no public exception class is defined anywhere else in ``agents``,
    and each is an OrchError (a private control-flow exception may stay where it is used)."""
    import agents
    import agents.errors
    from orch.errors import OrchError

    elsewhere = []
    for info in pkgutil.walk_packages(agents.__path__, "agents."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not name.startswith("_")
                and info.name != "agents.errors"
            ):
                elsewhere.append(f"{info.name}.{name}")
    assert not elsewhere, f"exception classes outside agents.errors: {elsewhere}"
    errors = [
        v
        for v in vars(agents.errors).values()
        if inspect.isclass(v) and issubclass(v, BaseException) and v.__module__ == "agents.errors"
    ]
    assert len(errors) >= 6
    assert all(issubclass(e, agents.errors.AgentsError) for e in errors)
    assert issubclass(agents.errors.AgentsError, OrchError)


def test_moved_errors_keep_the_names_records_give_them() -> None:
    """Records hash an error's ``module.qualname``: the classes that moved into
    agents.errors keep the names records made before the move hold."""
    from agents.errors import ProviderError, RegistryError, ToolCallError, ToolConfigError
    from orch.errors import type_path

    assert type_path(ProviderError) == "agents.models.retrying.ProviderError"
    assert type_path(RegistryError) == "agents.models.registry.RegistryError"
    assert type_path(ToolCallError) == "agents.tools.errors.ToolCallError"
    assert type_path(ToolConfigError) == "agents.tools.errors.ToolConfigError"
