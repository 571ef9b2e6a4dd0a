"""The output shape a router uses to select which successor branches run."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["Selection"]


class Selection(BaseModel):
    """Subclass this for a router's output; nodes with ``when=router.selects(label)`` run
    only when ``label`` is in ``branches``; the others are recorded as skipped."""

    branches: list[str] = Field(default_factory=list)
    """Labels of the branches to run."""
    reason: str = ""
    """Why (also recorded in the router's Decision, if it makes one)."""
