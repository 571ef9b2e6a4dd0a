"""``traces``' public faces export exactly what they offer (``exported_members``), and every
other module is private."""

from __future__ import annotations

import pkgutil

import pytest
from exported_members import check_face

import traces

FACES = ["traces", "traces.conformance", "traces.errors", "traces.otel", "traces.pgstore"]


@pytest.mark.parametrize("name", FACES)
def test_all_is_exactly_the_public_members(name: str) -> None:
    check_face(name)


def test_every_other_module_is_private() -> None:
    public = {
        m.name
        for m in pkgutil.walk_packages(traces.__path__, "traces.")
        if not m.name.split(".")[-1].startswith("_")
    }
    assert public == set(FACES) - {"traces"}
