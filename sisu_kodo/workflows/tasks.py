"""DecideST's pure part: turn an approved plan into concrete, identity-keyed tasks."""

from __future__ import annotations

from typing import Any

from sisu_kodo.canonical import content_hash
from sisu_kodo.contracts.plans import Plan, TaskSpec
from sisu_kodo.contracts.runs import StepId
from sisu_kodo.sbx.faults import task_labels


def derive_tasks(
    *,
    run_id: str,
    plan: Plan,
    goal: str,
    constraints: dict[str, Any],
    timeout_ms: int,
) -> list[TaskSpec]:
    count = len(plan.tasks)
    tasks = []
    for index, planned in enumerate(plan.tasks, start=1):
        identity = {
            "runId": run_id,
            "stepId": StepId.EXECUTE.value,
            "index": index,
            "name": planned.name,
            "command": planned.command,
            "env": {},
            "timeoutMs": timeout_ms,
            "labels": task_labels(goal, constraints, index=index, count=count),
        }
        tasks.append(TaskSpec(taskKey=content_hash(identity), **_without_run(identity)))
    return tasks


def _without_run(identity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in identity.items() if key not in ("runId", "stepId")}


def tasks_hash(tasks: list[TaskSpec]) -> str:
    return content_hash([task.model_dump() for task in tasks])
