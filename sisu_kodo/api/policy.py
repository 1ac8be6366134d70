"""Queue policy: what a run may ask for, checked before anything is written."""

from __future__ import annotations

from sisu_kodo.contracts.runs import RunStart
from sisu_kodo.db.recipes import RecipeRow
from sisu_kodo.errors import QueuePolicyViolationError
from sisu_kodo.workflows.names import PARENT_QUEUES, SBX_QUEUE


def check_run_policy(body: RunStart, recipe: RecipeRow) -> str:
    """Return the queue the run's parent workflow goes to, or raise queue_policy_violation."""
    queue = body.queueName or recipe.queue_name
    if queue == SBX_QUEUE:
        _violation(
            "a run's parent workflow may not be queued on sbxQ (sbxQ carries sandbox tasks)",
            field="queueName",
            value=queue,
        )
    if queue not in PARENT_QUEUES:
        _violation(f"unknown queue {queue!r}; runs go to intentQ", field="queueName", value=queue)
    if body.queuePartitionKey is None or not body.queuePartitionKey.strip():
        _violation(
            "queuePartitionKey is required and may not be blank: queues are partitioned by tenant",
            field="queuePartitionKey",
            value=body.queuePartitionKey,
        )
    caps = (
        ("workload.concurrency", body.workload.concurrency, recipe.max_concurrency),
        ("workload.steps", body.workload.steps, recipe.max_steps),
        ("workload.sandboxMinutes", body.workload.sandboxMinutes, recipe.max_sandbox_minutes),
    )
    for field, requested, cap in caps:
        if requested is not None and requested > cap:
            _violation(
                f"{field}={requested} exceeds recipe {recipe.name!r} cap of {cap}",
                field=field,
                value=requested,
                cap=cap,
            )
    return queue


def _violation(message: str, **details: object) -> None:
    raise QueuePolicyViolationError(message, details)
