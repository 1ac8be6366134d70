"""The error tree. Each class carries the contract's stable `code` and HTTP status.

    AppError (500 internal)
    ├── InvalidRequestError (400 validation_error)
    │   └── QueuePolicyViolationError (400 queue_policy_violation)
    ├── NotFoundError (404 not_found)
    ├── ConflictError (409)
    │   ├── IllegalStateError (409 illegal_state)
    │   ├── RetryDriftError (409 retry_drift)
    │   └── RunIdentityConflictError (409 run_identity_conflict)
    └── PlannerError (502 planner_error; in oc/port.py, raised by OpenCode planners)

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


def error_class_for(code: str) -> type[AppError]:
    """The class that owns `code` (used by the HTTP client to re-raise server errors)."""
    stack: list[type[AppError]] = [AppError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return AppError
