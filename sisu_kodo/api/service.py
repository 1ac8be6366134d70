"""Run control: the operations behind the HTTP routes.

Each function validates everything first and writes only after every check passed,
so a 4xx leaves the database untouched. Routes always pass the request's principal;
in-process callers (tests, tools with database access) act as the anonymous caller of
auth off, which may do everything.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient

from sisu_kodo.api.deps import IN_PROCESS, Caller
from sisu_kodo.api.gateway import Enqueue, UnitOfWork
from sisu_kodo.api.policy import check_run_policy
from sisu_kodo.api.workspaces import check_workspace_input, gate_workspace
from sisu_kodo.auth import ANONYMOUS, Principal
from sisu_kodo.blobs import BlobStore
from sisu_kodo.canonical import sha256_hex
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import (
    Accepted,
    ApprovePlan,
    NextAction,
    RejectPlan,
    RetryAccepted,
    RunStart,
    RunStarted,
    RunStatus,
    StepId,
)
from sisu_kodo.db import approvals, executions, intents, recipes, runs
from sisu_kodo.errors import (
    ForbiddenError,
    IllegalStateError,
    InvalidRequestError,
    NotFoundError,
    RetryDriftError,
    RunIdentityConflictError,
    SelfApprovalForbiddenError,
)
from sisu_kodo.workflows.names import (
    EXECUTE_WORKFLOW,
    PLAN_WORKFLOW,
    execute_workflow_id,
    plan_workflow_id,
    run_workflow_ids,
    task_workflow_id,
)

WAITING = frozenset({RunStatus.WAITING_INPUT})


def new_intent_id() -> str:
    return f"it_{uuid.uuid4().hex}"


def run_id_for(intent_id: str) -> str:
    return f"run_{sha256_hex(intent_id)[:32]}"


def create_intent(conn: sa.Connection, body: IntentCreate, principal: Principal = ANONYMOUS) -> str:
    """Record an intent in the tenant of a key bound to one (else its run's, at start);
    an `inputs.workspace` must name a readable repository and ref, or a visible upload."""
    check_workspace_input(conn, body.inputs, principal)
    intent_id = new_intent_id()
    intents.create_intent(
        conn,
        intent_id=intent_id,
        goal=body.goal,
        inputs=body.inputs,
        constraints=body.constraints,
        tenant=principal.sole_tenant,
        created_by_key_id=principal.key_id,
    )
    return intent_id


def require_visible_run(
    conn: sa.Connection, principal: Principal, *, run_id: str, for_update: bool = False
) -> runs.RunRow:
    """The run, if `principal` may see its tenant; otherwise the very 404 of a missing run."""
    run = runs.read_run(conn, run_id=run_id, for_update=for_update)
    if run is None or not principal.sees(run.queue_partition_key):
        raise NotFoundError(f"run {run_id} not found", {"runId": run_id})
    return run


def _require_visible_intent(
    conn: sa.Connection, principal: Principal, intent_id: str
) -> intents.IntentRow:
    intent = intents.read_intent(conn, intent_id=intent_id)
    if intent is None or not principal.sees_own(intent.tenant, intent.created_by_key_id):
        raise NotFoundError(f"intent {intent_id} not found", {"intentId": intent_id})
    return intent


def _bind_tenant(body: RunStart, principal: Principal) -> RunStart:
    """Default the partition to a sole-tenant key's tenant; refuse one the key lacks."""
    if body.queuePartitionKey is None and principal.sole_tenant is not None:
        body = body.model_copy(update={"queuePartitionKey": principal.sole_tenant})
    partition = body.queuePartitionKey
    if partition is not None and partition.strip() and not principal.sees(partition):
        raise ForbiddenError(
            f"key {principal.id} may not start runs in tenant {partition!r}",
            {"queuePartitionKey": partition},
        )
    return body


def start_run(
    unit: UnitOfWork,
    *,
    intent_id: str,
    body: RunStart,
    app_version: str,
    principal: Principal = ANONYMOUS,
) -> RunStarted:
    conn = unit.conn
    intent = _require_visible_intent(conn, principal, intent_id)
    body = _bind_tenant(body, principal)
    recipe = recipes.read_recipe(conn, name=body.recipeName)
    if recipe is None:
        raise InvalidRequestError(
            f"unknown recipe {body.recipeName!r}",
            [{"path": "recipeName", "message": "no such recipe"}],
        )
    queue = check_run_policy(body, recipe)
    identity = _start_identity(body, queue)
    if intent.tenant is not None and intent.tenant != identity["queuePartitionKey"]:
        raise ForbiddenError(
            f"intent {intent_id} belongs to another tenant than {identity['queuePartitionKey']!r}",
            {"queuePartitionKey": identity["queuePartitionKey"]},
        )
    run_id = run_id_for(intent_id)
    plan_enqueue = Enqueue(
        PLAN_WORKFLOW, plan_workflow_id(run_id), identity["queuePartitionKey"], (run_id,)
    )

    existing = runs.read_run_by_intent(conn, intent_id=intent_id)
    if existing is None:
        inserted = runs.insert_run(
            conn,
            run_id=run_id,
            intent_id=intent_id,
            workflow_id=plan_workflow_id(run_id),
            queue_partition_key=identity["queuePartitionKey"],
            recipe_name=recipe.name,
            start_request=identity,
            app_version=app_version,
        )
        if inserted:
            approvals.record_starter(
                conn, run_id=run_id, key_id=principal.key_id, name=principal.name
            )
            intents.claim_tenant(conn, intent_id=intent_id, tenant=identity["queuePartitionKey"])
            unit.enqueue(plan_enqueue)
            return RunStarted(
                runId=run_id,
                workflowId=plan_workflow_id(run_id),
                intentId=intent_id,
                status=RunStatus.QUEUED,
            )
        existing = runs.read_run_by_intent(conn, intent_id=intent_id)
        assert existing is not None
    drift = _identity_drift(existing.start_request, identity)
    if drift:
        raise RunIdentityConflictError(
            f"intent {intent_id} already has run {existing.id} started with other values for: "
            + ", ".join(item["field"] for item in drift),
            {"runId": existing.id, "fields": [item["field"] for item in drift], "drift": drift},
        )
    unit.heal(plan_enqueue)
    return RunStarted(
        runId=existing.id,
        workflowId=existing.workflow_id,
        intentId=intent_id,
        status=existing.status,
        replayed=True,
    )


def _start_identity(body: RunStart, queue: str) -> dict[str, Any]:
    assert body.queuePartitionKey is not None
    return {
        "recipeName": body.recipeName,
        "queueName": queue,
        "queuePartitionKey": body.queuePartitionKey,
        "workload": body.workload.model_dump(),
        "traceId": body.traceId,
    }


def _identity_drift(existing: dict[str, Any], incoming: dict[str, Any]) -> list[dict[str, Any]]:
    drift = []
    for field, old, new in _leaves(existing, incoming):
        if old != new:
            drift.append({"field": field, "existing": old, "incoming": new})
    return drift


def _leaves(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    pairs = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            pairs.extend(_leaves(left, right, f"{prefix}{key}."))
        else:
            pairs.append((f"{prefix}{key}", left, right))
    return pairs


def approve_plan(
    unit: UnitOfWork,
    *,
    run_id: str,
    body: ApprovePlan,
    caller: Caller = IN_PROCESS,
    blobs: BlobStore | None = None,
) -> Accepted:
    """Count the caller's approval; the gate opens at the recipe's N-th distinct approver.
    A run with a workspace is approved only while its snapshot is the one decided on."""
    conn = unit.conn
    run, recipe = _gate(conn, run_id, caller.principal)
    assert run.plan_sha256 is not None and run.tasks_sha256 is not None
    workspace_sha256 = gate_workspace(conn, run_id=run_id, blobs=blobs)
    approvals.record_vote(
        conn,
        run_id=run_id,
        plan_sha256=run.plan_sha256,
        tasks_sha256=run.tasks_sha256,
        principal=caller.principal.id,
        key_name=caller.principal.name,
        approved_by=body.approvedBy,
        notes=body.notes,
        client_addr=caller.client_addr,
    )
    votes = approvals.list_votes(
        conn, run_id=run_id, plan_sha256=run.plan_sha256, tasks_sha256=run.tasks_sha256
    )
    if len(votes) < recipe.required_approvals:
        return Accepted(runId=run_id, status=RunStatus.WAITING_INPUT)
    _record_decision(conn, run, "approved", body.approvedBy, body.notes, caller, workspace_sha256)
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.QUEUED,
        event="plan.approved",
        detail={
            "approvedBy": body.approvedBy,
            "approvers": [vote.principal for vote in votes],
            "notes": body.notes,
            "planSha256": run.plan_sha256,
            "tasksSha256": run.tasks_sha256,
            "workspaceSha256": workspace_sha256,
        },
        allowed_from=WAITING,
    )
    unit.enqueue(
        Enqueue(
            EXECUTE_WORKFLOW,
            execute_workflow_id(run_id, run.retry_count),
            run.queue_partition_key,
            (run_id,),
        )
    )
    return Accepted(runId=run_id, status=RunStatus.QUEUED)


def reject_plan(
    conn: sa.Connection, *, run_id: str, body: RejectPlan, caller: Caller = IN_PROCESS
) -> Accepted:
    """One rejection closes the gate for good (no quorum: any approver may say no)."""
    run, _ = _gate(conn, run_id, caller.principal)
    _record_decision(conn, run, "rejected", body.rejectedBy, body.reason, caller)
    reason = f": {body.reason}" if body.reason else ""
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.FAILED,
        event="plan.rejected",
        detail={"rejectedBy": body.rejectedBy, "reason": body.reason},
        allowed_from=WAITING,
        error=f"plan rejected by {body.rejectedBy}{reason}",
    )
    return Accepted(runId=run_id, status=RunStatus.FAILED)


def _gate(
    conn: sa.Connection, run_id: str, principal: Principal
) -> tuple[runs.RunRow, recipes.RecipeRow]:
    """The run at an open gate, if `principal` may decide it (separation of duties)."""
    run = require_visible_run(conn, principal, run_id=run_id, for_update=True)
    if run.status is not RunStatus.WAITING_INPUT or run.next_action is not NextAction.APPROVE_PLAN:
        raise IllegalStateError(
            f"run {run_id} is {run.status.value}, not waiting for plan approval",
            {"runId": run_id, "status": run.status.value},
        )
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    assert recipe is not None  # app.runs.recipe_name references app.recipes
    starter = approvals.read_starter(conn, run_id=run_id)
    own = principal.key_id is not None and starter.key_id == principal.key_id
    if own and not recipe.allow_self_approval:
        raise SelfApprovalForbiddenError(
            f"key {principal.id} started run {run_id} and may not decide its plan;"
            " another approver must (or the recipe must set allowSelfApproval)",
            {"runId": run_id, "keyId": principal.key_id},
        )
    return run, recipe


def _record_decision(
    conn: sa.Connection,
    run: runs.RunRow,
    decision: str,
    decided_by: str,
    notes: str | None,
    caller: Caller,
    workspace_sha256: str | None = None,
) -> None:
    """The gate's decision, bound to the decided plan, tasks and workspace and to the
    principal."""
    assert run.plan_sha256 is not None and run.tasks_sha256 is not None
    runs.record_decision(
        conn,
        run_id=run.id,
        decision=decision,
        decided_by=decided_by,
        notes=notes,
        plan_sha256=run.plan_sha256,
        tasks_sha256=run.tasks_sha256,
        key_id=caller.principal.key_id,
        key_name=caller.principal.name,
        client_addr=caller.client_addr,
        workspace_sha256=workspace_sha256,
    )


RETRYABLE = frozenset({RunStatus.RETRIES_EXCEEDED, RunStatus.FAILED})


def retry_run(unit: UnitOfWork, *, run_id: str, principal: Principal = ANONYMOUS) -> RetryAccepted:
    """Resume a failed run from its first unfinished step, keeping everything that succeeded."""
    conn = unit.conn
    run = require_visible_run(conn, principal, run_id=run_id, for_update=True)
    if run.status is RunStatus.SUCCEEDED:
        raise RetryDriftError(
            f"run {run_id} already succeeded; there is nothing to retry",
            {"runId": run_id, "status": run.status.value},
        )
    if run.status not in RETRYABLE:
        raise IllegalStateError(
            f"run {run_id} is {run.status.value}; only failed or retries_exceeded runs retry",
            {"runId": run_id, "status": run.status.value},
        )
    decision = runs.read_decision(conn, run_id=run_id)
    if decision is not None and decision.decision == "rejected":
        raise IllegalStateError(
            f"the plan of run {run_id} was rejected by {decision.decided_by}; post a new intent",
            {"runId": run_id, "status": run.status.value},
        )
    from_step = _first_unfinished_step(conn, run_id)
    reopened = runs.reopen_for_retry(conn, run_id=run_id, from_step=from_step)
    if from_step is StepId.EXECUTE:
        workflow = Enqueue(
            EXECUTE_WORKFLOW,
            execute_workflow_id(run_id, reopened.retry_count),
            run.queue_partition_key,
            (run_id,),
        )
    else:
        workflow = Enqueue(
            PLAN_WORKFLOW,
            plan_workflow_id(run_id, reopened.retry_count),
            run.queue_partition_key,
            (run_id,),
        )
    unit.enqueue(workflow)
    return RetryAccepted(
        runId=run_id,
        status=reopened.status,
        fromStep=from_step.value,
        retryCount=reopened.retry_count,
    )


def _first_unfinished_step(conn: sa.Connection, run_id: str) -> StepId:
    finished = {step.step_id for step in runs.list_steps(conn, run_id=run_id) if step.finished_at}
    for step in (StepId.COMPILE, StepId.DECIDE):
        if step not in finished:
            return step
    return StepId.EXECUTE


def cancel_run(unit: UnitOfWork, *, run_id: str, principal: Principal = ANONYMOUS) -> Accepted:
    """Stop a run: status canceled now, and its workflows (tasks included) in DBOS."""
    run = require_visible_run(unit.conn, principal, run_id=run_id, for_update=True)
    if run.status.terminal:
        raise IllegalStateError(
            f"run {run_id} is already {run.status.value}",
            {"runId": run_id, "status": run.status.value},
        )
    runs.transition(
        unit.conn,
        run_id=run_id,
        status=RunStatus.CANCELED,
        event="run.canceled",
        detail={"previousStatus": run.status.value},
    )
    parents = run_workflow_ids(run_id, run.retry_count)
    # Task workflows are enqueued by the run's execute step, not as DBOS children, so
    # they are canceled by id: every task of the current round still queued or running.
    tasks = [
        task_workflow_id(task.taskKey, run.retry_count)
        for task in executions.decided_tasks(unit.conn, run_id=run_id)
    ]

    def cancel_workflows(client: DBOSClient) -> None:
        live = client.list_workflows(
            workflow_ids=parents + tasks,
            status=["ENQUEUED", "PENDING", "DELAYED"],
            load_input=False,
            load_output=False,
        )
        if live:
            client.cancel_workflows([workflow.workflow_id for workflow in live])

    unit.then(cancel_workflows)
    return Accepted(runId=run_id, status=RunStatus.CANCELED)
