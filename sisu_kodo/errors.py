"""The error tree. Each class carries the contract's stable `code` and HTTP status.

    AppError (500 internal)
    ├── InvalidRequestError (400 validation_error)
    │   ├── QueuePolicyViolationError (400 queue_policy_violation)
    │   ├── HostNotAllowedError (400 host_not_allowed)
    │   └── WebhookUrlRefusedError (400 webhook_url_refused: the SSRF guard)
    ├── UnauthenticatedError (401 unauthenticated: no, bad, unknown, expired or revoked key)
    ├── ForbiddenError (403 forbidden: the key's roles or tenants do not allow it)
    │   └── SelfApprovalForbiddenError (403 self_approval_forbidden)
    ├── OriginNotAllowedError (403 origin_not_allowed)
    ├── PayloadTooLargeError (413 payload_too_large)
    ├── NotFoundError (404 not_found)
    ├── ConflictError (409)
    │   ├── IllegalStateError (409 illegal_state)
    │   ├── RetryDriftError (409 retry_drift)
    │   ├── RunIdentityConflictError (409 run_identity_conflict)
    │   └── BudgetExhaustedError (409 budget_exhausted)
    ├── PlannerError (502 planner_error; in oc/port.py, raised by OpenCode planners)
    └── workspace errors (400 archive_*, workspace_*; 409 workspace_mismatch; in
        workspaces/errors.py) and blob errors (500 blob_*; in blobs/port.py)

Domain code raises these; `api/errors.py` is the one place that turns them into
`{code, message, details?}` bodies, and `client.py` turns bodies back into them.
Constructors take (message, details) only, so the errors survive pickling across
DBOS step and workflow boundaries.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.details))


class InvalidRequestError(AppError):
    code = "validation_error"
    http_status = 400


class QueuePolicyViolationError(InvalidRequestError):
    code = "queue_policy_violation"


class HostNotAllowedError(InvalidRequestError):
    """The Host header names no allowed host (SISU_ALLOWED_HOSTS): DNS rebinding."""

    code = "host_not_allowed"


class WebhookUrlRefusedError(InvalidRequestError):
    """A webhook URL points where webhooks may not go (loopback, private, metadata...)."""

    code = "webhook_url_refused"


class UnauthenticatedError(AppError):
    """The request carries no valid API key (answered with `WWW-Authenticate: Bearer`)."""

    code = "unauthenticated"
    http_status = 401


class ForbiddenError(AppError):
    """The key is valid, but its roles or tenants do not allow the request."""

    code = "forbidden"
    http_status = 403


class SelfApprovalForbiddenError(ForbiddenError):
    """The principal that started a run may not decide its plan (separation of duties)."""

    code = "self_approval_forbidden"


class OriginNotAllowedError(AppError):
    """A state-changing request from a page of another site (SISU_ALLOWED_ORIGINS)."""

    code = "origin_not_allowed"
    http_status = 403


class PayloadTooLargeError(AppError):
    """The request body is longer than SISU_MAX_BODY_BYTES."""

    code = "payload_too_large"
    http_status = 413


class NotFoundError(AppError):
    code = "not_found"
    http_status = 404


class ConflictError(AppError):
    code = "conflict"
    http_status = 409


class IllegalStateError(ConflictError):
    code = "illegal_state"


class RetryDriftError(ConflictError):
    code = "retry_drift"


class RunIdentityConflictError(ConflictError):
    code = "run_identity_conflict"


class BudgetExhaustedError(ConflictError):
    """Retrying a run stopped by a budget without raising that budget."""

    code = "budget_exhausted"


def error_class_for(code: str) -> type[AppError]:
    """The class that owns `code` (used by the HTTP client to re-raise server errors)."""
    stack: list[type[AppError]] = [AppError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return AppError
