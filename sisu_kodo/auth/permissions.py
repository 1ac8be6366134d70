"""The one permission table: what each role may do. Deny by default."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sisu_kodo.contracts.keys import Role


class Action(StrEnum):
    """What a route does, as far as permissions go; every route declares one."""

    READ = "read"  # runs, intents, events, tasks, artifacts of the key's tenants
    SUBMIT = "submit"  # create intents, start runs
    DECIDE = "decide"  # approve or reject plans
    OPERATE = "operate"  # retry and cancel runs
    AUDIT = "audit"  # read the audit log (every tenant)
    KEYS = "keys"  # create, list and revoke keys
    WEBHOOKS = "webhooks"  # subscribe the key's tenants to webhooks, list and delete them


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.READ}),
    Role.SUBMITTER: frozenset({Action.READ, Action.SUBMIT}),
    Role.APPROVER: frozenset({Action.READ, Action.DECIDE}),
    Role.OPERATOR: frozenset({Action.READ, Action.OPERATE, Action.AUDIT, Action.WEBHOOKS}),
    Role.ADMIN: frozenset(Action),
}


def allows(roles: Iterable[Role], action: Action) -> bool:
    """True when one of `roles` grants `action`."""
    return any(action in PERMISSIONS[role] for role in roles)
