"""Queue and workflow names shared by the API shim (which enqueues by name) and the worker."""

from __future__ import annotations

INTENT_QUEUE = "intentQ"
SBX_QUEUE = "sbxQ"
PARENT_QUEUES = frozenset({INTENT_QUEUE})

PLAN_WORKFLOW = "run_plan_workflow"
EXECUTE_WORKFLOW = "run_execute_workflow"
TASK_WORKFLOW = "sandbox_task_workflow"


def plan_workflow_id(run_id: str) -> str:
    return run_id


def execute_workflow_id(run_id: str, retry_count: int = 0) -> str:
    return f"{run_id}-execute" if retry_count == 0 else f"{run_id}-execute-r{retry_count}"


def task_workflow_id(task_key: str, retry_count: int = 0) -> str:
    return f"task-{task_key}" if retry_count == 0 else f"task-{task_key}-r{retry_count}"
