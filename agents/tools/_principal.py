"""Who is calling a tool: a principal with a tenant and scopes (the broker's first stage).

A run's principal is its ``principal`` service (``arun(..., services={"principal":
Principal(...)})``), so every tool call of the run acts for it; a call may name another one
explicitly (an agent acting for a user, say). The principal's id and tenant go into every
audit entry and into every recorded tool request; its scopes decide authorisation.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Principal"]

_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")


class Principal(BaseModel):
    """An identity: ``id`` within ``tenant``, holding ``scopes``.

    A scope ``files:*`` covers every scope that starts with ``files:``; ``*`` covers all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    tenant: str = Field(min_length=1)
    scopes: tuple[str, ...] = ()
    """Sorted and without repeats, whatever collection was given: a set has no order, and a
    principal goes into hashed records."""

    @field_validator("scopes", mode="before")
    @classmethod
    def _sorted(cls, v: Any) -> Any:
        if isinstance(v, str):
            # pydantic reports a ValueError as a validation error naming the field.
            raise ValueError("scopes must be a collection of scope names, not one string")  # noqa: TRY004
        if isinstance(v, set | frozenset | list | tuple):
            return tuple(sorted({str(s) for s in v}))
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in v if not _SCOPE.match(s)]
        if bad:
            raise ValueError(f"scopes {bad} are not valid scope names (letters, digits, _.:*-)")
        return v

    def grants(self, scope: str) -> bool:
        """True when a scope of this principal covers ``scope``."""
        if scope in self.scopes or "*" in self.scopes:
            return True
        return any(s.endswith(":*") and scope.startswith(s[:-1]) for s in self.scopes)

    def missing(self, required: frozenset[str] | tuple[str, ...]) -> list[str]:
        """The required scopes this principal lacks, sorted."""
        return sorted(s for s in required if not self.grants(s))

    @functools.cached_property
    def _record(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "scopes": list(self.scopes)}

    def record(self) -> dict[str, Any]:
        """The principal as it goes into a recorded request (do not change it)."""
        return self._record
