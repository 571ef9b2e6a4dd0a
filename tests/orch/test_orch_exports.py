"""Each public face of ``orch`` exports exactly what it offers (``exported_members``), and
every other module of the engine is private."""

from __future__ import annotations

import pkgutil

import pytest
from exported_members import check_face

import orch

FACES = [
    "orch",
    "orch.batch",
    "orch.batch.dask",
    "orch.cli.common",
    "orch.errors",
    "orch.render",
    "orch.selection",
    "orch.testing",
    "orch.testing.pytest_plugin",
    "orch.ui",
]


@pytest.mark.parametrize("name", FACES)
def test_all_is_exactly_the_public_members(name: str) -> None:
    check_face(name)


def test_the_cli_face_is_the_app_and_main() -> None:
    import orch.cli

    # Lazy: they load the plugins' commands, so a plugin importing orch.cli.common does not.
    assert orch.cli.__all__ == ["app", "main"]
    assert callable(orch.cli.main) and orch.cli.app.info.name == "orch"


def test_every_other_engine_module_is_private() -> None:
    public = {
        m.name
        for m in pkgutil.walk_packages(orch.__path__, "orch.")
        if not any(part.startswith("_") for part in m.name.split(".")[1:])
    }
    assert public == set(FACES) - {"orch"} | {"orch.cli"}


def test_a_class_that_moved_keeps_the_name_records_give_it() -> None:
    """Records name error types ``module.qualname`` (hashed); a class that moved pins its old
    name, so that a record made before the move replays to the same root hash."""
    from orch._effect_path import type_name
    from orch.errors import ReplayDivergenceError, RetryableError, type_path

    class Moved(RetryableError):
        __orch_recorded_name__ = "old.place.Moved"

    class Child(Moved):  # the pin is not inherited: a subclass is named where it is
        pass

    assert type_name(Moved("x")) == "old.place.Moved"
    assert (
        type_path(Child)
        == f"{__name__}.test_a_class_that_moved_keeps_the_name_records_give_it.<locals>.Child"
    )
    assert type_name(ValueError("x")) == "ValueError"
    assert type_path(ReplayDivergenceError) == "orch.effects.ReplayDivergenceError"
    assert orch.RetryPolicy(retry_on=(Moved,)).spec()["retry_on"] == ["old.place.Moved"]
