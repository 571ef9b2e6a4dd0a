"""Who is calling a tool: a principal with a tenant and scopes (the broker's first stage).

A run's principal is its ``principal`` service (``arun(..., services={"principal":
Principal(...)})``), so every tool call of the run acts for it; a call may name another one
explicitly (an agent acting for a user, say). The principal's id and tenant go into every
audit entry and into every recorded tool request; its scopes decide authorisation.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = ["Principal"]

_SCOPE = re.compile(r"^[A-Za-z0-9_.:*-]+$")


class Principal(BaseModel):
    """An identity: ``id`` within ``tenant``, holding ``scopes``.

    A scope ``files:*`` covers every scope that starts with ``files:``; ``*`` covers all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    tenant: str = Field(min_length=1)
    scopes: frozenset[str] = frozenset()

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: frozenset[str]) -> frozenset[str]:
        bad = sorted(s for s in v if not _SCOPE.match(s))
        if bad:
            raise ValueError(f"scopes {bad} are not valid scope names (letters, digits, _.:*-)")
        return v

    @field_serializer("scopes")
    def _sorted(self, v: frozenset[str]) -> list[str]:
        # A set has no order; the record needs one that is the same in every process.
        return sorted(v)

    def grants(self, scope: str) -> bool:
        """True when a scope of this principal covers ``scope``."""
        if scope in self.scopes or "*" in self.scopes:
            return True
        return any(s.endswith(":*") and scope.startswith(s[:-1]) for s in self.scopes)

    def missing(self, required: frozenset[str]) -> list[str]:
        """The required scopes this principal lacks, sorted."""
        return sorted(s for s in required if not self.grants(s))

    def record(self) -> dict[str, Any]:
        """The principal as it goes into a recorded request."""
        return {"id": self.id, "tenant": self.tenant, "scopes": sorted(self.scopes)}
