"""Identity: API keys, roles, tenants. `identify` is the entry point of every request."""

from sisu_kodo.auth.gate import auth_required, check_bind, identify, identify_key, is_loopback
from sisu_kodo.auth.keys import issue_key, list_key_views, revoke_key
from sisu_kodo.auth.permissions import PERMISSIONS, Action, allows
from sisu_kodo.auth.principals import ANONYMOUS, ANONYMOUS_ID, NOBODY, Principal

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_ID",
    "NOBODY",
    "PERMISSIONS",
    "Action",
    "Principal",
    "allows",
    "auth_required",
    "check_bind",
    "identify",
    "identify_key",
    "is_loopback",
    "issue_key",
    "list_key_views",
    "revoke_key",
]
