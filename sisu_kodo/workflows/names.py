"""Queue and workflow names shared by the API shim (which enqueues by name) and the worker."""

from __future__ import annotations

INTENT_QUEUE = "intentQ"
SBX_QUEUE = "sbxQ"
PARENT_QUEUES = frozenset({INTENT_QUEUE})

PLAN_WORKFLOW = "run_plan_workflow"
EXECUTE_WORKFLOW = "run_execute_workflow"
TASK_WORKFLOW = "sandbox_task_workflow"


# Each retry of a run gets fresh workflow ids (suffix -r<n>), so a retried phase runs
# anew while the first attempt's ids stay as they were: the manual's workflowId is the run id.


def plan_workflow_id(run_id: str, retry_count: int = 0) -> str:
    return run_id if retry_count == 0 else f"{run_id}-r{retry_count}"


def execute_workflow_id(run_id: str, retry_count: int = 0) -> str:
    return f"{run_id}-execute" if retry_count == 0 else f"{run_id}-execute-r{retry_count}"


def task_workflow_id(task_key: str, retry_count: int = 0) -> str:
    return f"task-{task_key}" if retry_count == 0 else f"task-{task_key}-r{retry_count}"


def canary_rest_workflow_id(run_id: str, retry_count: int = 0) -> str:
    """The execute workflow of the tasks approved after a canary (its own id: the
    canary's execute workflow of the round already ran)."""
    return f"{execute_workflow_id(run_id, retry_count)}-rest"


def round_workflow_ids(run_id: str, retry_count: int) -> list[str]:
    """The parent workflows one retry round may use, in the order they run."""
    return [
        plan_workflow_id(run_id, retry_count),
        execute_workflow_id(run_id, retry_count),
        canary_rest_workflow_id(run_id, retry_count),
    ]


def run_workflow_ids(run_id: str, retry_count: int) -> list[str]:
    """The parent workflow ids a run may have used up to `retry_count`."""
    ids = []
    for attempt in range(retry_count + 1):
        ids += round_workflow_ids(run_id, attempt)
    return ids


WEBHOOK_QUEUE = "webhookQ"
WEBHOOK_WORKFLOW = "webhook_delivery_workflow"


def webhook_workflow_id(message_id: str, subscription_id: str) -> str:
    return f"webhook-{message_id}-{subscription_id}"
