"""``routers``' package faces export exactly what they offer (``exported_members``)."""

from __future__ import annotations

import pytest
from exported_members import check_face


@pytest.mark.parametrize("name", ["routers", "routers.eval", "routers.errors"])
def test_all_is_exactly_the_public_members(name: str) -> None:
    check_face(name)
