"""Tool credentials per tenant: the broker injects the calling tenant's, and no other.

A :class:`CredentialVault` maps tenant -> credential name -> secret. A tool whose policy
names a credential gets the calling principal's tenant's value: as a hidden argument of a
local tool, as an environment variable of a stdio server's process, or as a header of an
HTTP server's connection (one connection per tenant, so one tenant's credential never
travels on a connection another tenant's call uses). A tenant without that credential is
refused before anything is called. Values never reach a record, an audit entry or a
``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agents.errors import ToolConfigError

__all__ = ["CredentialVault"]


class CredentialVault:
    def __init__(self, secrets: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._secrets: dict[str, dict[str, str]] = {}
        for tenant, entries in (secrets or {}).items():
            for name, value in entries.items():
                self.set(tenant, name, value)

    @classmethod
    def from_env(cls, mapping: Mapping[str, Mapping[str, str]]) -> CredentialVault:
        """tenant -> credential name -> environment variable holding the value."""
        vault = cls()
        for tenant, entries in mapping.items():
            for name, env in entries.items():
                value = os.environ.get(env)
                if value is None:
                    raise ToolConfigError(
                        f"credential {name!r} of tenant {tenant!r} should come from ${env}, "
                        f"which is not set; fix: export {env}=..."
                    )
                vault.set(tenant, name, value)
        return vault

    def set(self, tenant: str, name: str, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ToolConfigError(
                f"credential {name!r} of tenant {tenant!r} must be a non-empty string"
            )
        self._secrets.setdefault(tenant, {})[name] = value

    def get(self, tenant: str, name: str) -> str | None:
        """The tenant's own credential, or None: never another tenant's."""
        return self._secrets.get(tenant, {}).get(name)

    def values(self) -> list[str]:
        """Every secret value (for scrubbing records), never for display."""
        return [v for entries in self._secrets.values() for v in entries.values()]

    def __repr__(self) -> str:
        tenants = {t: sorted(e) for t, e in sorted(self._secrets.items())}
        return f"CredentialVault({tenants})"
