"""A package that registers a provider kind another package registers too (a conflict)."""

from __future__ import annotations

from orch_echo_provider import EchoClient

__all__ = ["EchoClient"]
