"""Adapters of the shared recorded-data folders; importing this registers them all."""

from __future__ import annotations

__all__: list[str] = []
