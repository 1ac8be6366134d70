"""Who is calling: a key's name, roles and tenants, or the anonymous caller of auth off."""

from __future__ import annotations

from dataclasses import dataclass

from sisu_kodo.auth.permissions import Action, allows
from sisu_kodo.contracts.keys import ALL_TENANTS, Role

ANONYMOUS_ID = "anonymous"


@dataclass(frozen=True)
class Principal:
    key_id: str | None
    name: str
    roles: frozenset[Role]
    tenants: frozenset[str]

    @property
    def id(self) -> str:
        """The key id, or `anonymous`: what audit rows and approvals record."""
        return self.key_id or ANONYMOUS_ID

    @property
    def every_tenant(self) -> bool:
        """Bound to `*`, or an admin (who acts in every tenant whatever the key lists)."""
        return ALL_TENANTS in self.tenants or Role.ADMIN in self.roles

    @property
    def sole_tenant(self) -> str | None:
        """The tenant a key bound to exactly one uses when a request names none."""
        if len(self.tenants) == 1 and ALL_TENANTS not in self.tenants:
            return next(iter(self.tenants))
        return None

    def can(self, action: Action) -> bool:
        return allows(self.roles, action)

    def sees(self, tenant: str | None) -> bool:
        """May this principal see (or act in) `tenant`? None: no tenant yet, only `*`."""
        return self.every_tenant or (tenant is not None and tenant in self.tenants)

    def sees_own(self, tenant: str | None, created_by_key_id: str | None) -> bool:
        """May this principal see a record (intent, upload) of `tenant`, or, while it has
        no tenant yet, one this principal's key created?"""
        return self.sees(tenant) or (tenant is None and created_by_key_id == self.key_id)


# While auth is off every caller is this one: every role, every tenant.
ANONYMOUS = Principal(None, ANONYMOUS_ID, frozenset(Role), frozenset({ALL_TENANTS}))

# Who a refused request is recorded as before its key is known: no roles, no tenants.
NOBODY = Principal(None, ANONYMOUS_ID, frozenset(), frozenset())
