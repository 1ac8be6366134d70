"""What an approval covers: every decided task, a subset, or a canary of the first N.

The approval binds the sha256 of exactly the approved task keys (in task-list order);
ExecuteST runs only those, and refuses to enqueue any other task.
"""

from __future__ import annotations

from dataclasses import dataclass

from sisu_kodo.canonical import content_hash
from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import ApprovePlan
from sisu_kodo.errors import InvalidRequestError


@dataclass(frozen=True)
class ApprovalScope:
    keys: list[str]  # approved task keys, in task-list order
    sha256: str
    canary: int | None  # the first `canary` tasks run, then the run parks again

    @property
    def count(self) -> int:
        return len(self.keys)


def approved_sha256(keys: list[str]) -> str:
    return content_hash(keys)


def scope_of(tasks: list[TaskSpec], body: ApprovePlan) -> ApprovalScope:
    """The task set `body` approves among the decided `tasks`.

    Raises:
        InvalidRequestError: unknown task keys, or a canary not smaller than the plan.
    """
    keys = [task.taskKey for task in tasks]
    if body.tasks is not None:
        unknown = sorted(set(body.tasks) - set(keys))
        if unknown:
            raise InvalidRequestError(
                f"{len(unknown)} approved task(s) are not among the run's decided tasks",
                [{"path": "tasks", "message": f"unknown taskKey {key}"} for key in unknown[:20]],
            )
        chosen = set(body.tasks)
        keys = [key for key in keys if key in chosen]
        return ApprovalScope(keys, approved_sha256(keys), None)
    if body.canary is not None:
        if body.canary >= len(keys):
            raise InvalidRequestError(
                f"canary {body.canary} must be smaller than the plan's {len(keys)} task(s)",
                [{"path": "canary", "message": f"at most {len(keys) - 1}"}],
            )
        canary = keys[: body.canary]
        return ApprovalScope(canary, approved_sha256(canary), body.canary)
    return ApprovalScope(keys, approved_sha256(keys), None)


def whole_plan(tasks: list[TaskSpec]) -> ApprovalScope:
    keys = [task.taskKey for task in tasks]
    return ApprovalScope(keys, approved_sha256(keys), None)
