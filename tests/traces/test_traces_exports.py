"""``traces``' package face exports exactly what it offers (``exported_members``)."""

from __future__ import annotations

from exported_members import check_face


def test_all_is_exactly_the_public_members() -> None:
    check_face("traces")
