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
from sisu_kodo.auth import ANONYMOUS, Action, Principal
from sisu_kodo.blobs import BlobStore
from sisu_kodo.budgets import SANDBOX_MINUTES, measure
from sisu_kodo.canonical import sha256_hex
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import (
    Accepted,
    ApprovalExtended,
    ApprovePlan,
    CommentIn,
    ExtendApproval,
    NextAction,
    RejectPlan,
    RetryAccepted,
    RetryRun,
    RunStart,
    RunStarted,
    RunStatus,
    StepId,
)
from sisu_kodo.db import approvals, artifacts, budgets, executions, gates, intents, recipes, runs
from sisu_kodo.errors import (
    BudgetExhaustedError,
    ForbiddenError,
    IllegalStateError,
    InvalidRequestError,
    NotFoundError,
    QueuePolicyViolationError,
    RetryDriftError,
    RunIdentityConflictError,
    SelfApprovalForbiddenError,
)
from sisu_kodo.gates import check_ttl
from sisu_kodo.gates.scope import scope_of, whole_plan
from sisu_kodo.workflows.names import (
    EXECUTE_WORKFLOW,
    PLAN_WORKFLOW,
    canary_rest_workflow_id,
    execute_workflow_id,
    plan_workflow_id,
    run_workflow_ids,
    task_workflow_id,
)

WAITING = frozenset({RunStatus.WAITING_INPUT})
# What a run waiting at a gate waits for: its plan's approval, or its canary's.
GATE_ACTIONS = frozenset({NextAction.APPROVE_PLAN, NextAction.APPROVE_CANARY})


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


def read_visible_artifact(
    conn: sa.Connection, principal: Principal, *, uri: str, blobs: BlobStore
) -> artifacts.Artifact:
    """The artifact, if `principal` may see its run's tenant; otherwise the 404 of a missing one."""
    found = None
    if "\x00" not in uri:  # PostgreSQL text holds no NUL, so no artifact has one
        tenant = artifacts.read_artifact_tenant(conn, uri=uri)
        if principal.sees(tenant):  # another tenant's artifact: as if missing
            found = artifacts.read_artifact(conn, uri=uri, blobs=blobs)
    if found is None:
        raise NotFoundError(f"artifact {uri} not found", {"uri": uri})
    return found


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
    check_ttl(intent.constraints)
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
    blobs: BlobStore | None,  # no default: every gate says which store it checks against
    caller: Caller = IN_PROCESS,
) -> Accepted:
    """Count the caller's approval; the gate opens at the recipe's N-th distinct approver,
    for the task set the quorum-reaching approval names (every task, a subset, a canary).
    At a canary's gate one approval runs the remaining tasks. A run with a workspace is
    approved only while its snapshot is the one decided on."""
    conn = unit.conn
    run, recipe = _gate(conn, run_id, caller.principal)
    assert run.plan_sha256 is not None and run.tasks_sha256 is not None
    decided = executions.decided_tasks(conn, run_id=run_id)
    if run.next_action is NextAction.APPROVE_CANARY:
        return _approve_after_canary(unit, run, body, decided, caller)
    scope = scope_of(decided, body)
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
    _record_decision(
        conn,
        run,
        "approved",
        body.approvedBy,
        body.notes,
        caller,
        workspace_sha256=workspace_sha256,
    )
    approvals.record_approved_tasks(
        conn, run_id=run_id, keys=scope.keys, sha256=scope.sha256, canary=scope.canary
    )
    gates.close_deadline(conn, run_id=run_id, closed_as="answered")
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
            "approvedTasks": scope.count,
            "approvedTasksSha256": scope.sha256,
            "canary": scope.canary,
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


def _approve_after_canary(
    unit: UnitOfWork,
    run: runs.RunRow,
    body: ApprovePlan,
    decided: list[TaskSpec],
    caller: Caller,
) -> Accepted:
    """The canary ran and was looked at: approve every decided task, run the rest."""
    if body.tasks is not None or body.canary is not None:
        raise InvalidRequestError(
            "after a canary the approval covers every remaining task;"
            " tasks and canary are not accepted here",
            [{"path": "tasks" if body.tasks is not None else "canary", "message": "not here"}],
        )
    scope = whole_plan(decided)
    conn = unit.conn
    approvals.record_approved_tasks(
        conn, run_id=run.id, keys=scope.keys, sha256=scope.sha256, canary=None
    )
    gates.close_deadline(conn, run_id=run.id, closed_as="answered")
    runs.transition(
        conn,
        run_id=run.id,
        status=RunStatus.QUEUED,
        event="plan.approved",
        detail={
            "approvedBy": body.approvedBy,
            "approvers": [caller.principal.id],
            "notes": body.notes,
            "phase": "canary",
            "approvedTasks": scope.count,
            "approvedTasksSha256": scope.sha256,
        },
        allowed_from=WAITING,
    )
    unit.enqueue(
        Enqueue(
            EXECUTE_WORKFLOW,
            canary_rest_workflow_id(run.id, run.retry_count),
            run.queue_partition_key,
            (run.id,),
        )
    )
    return Accepted(runId=run.id, status=RunStatus.QUEUED)


def reject_plan(
    conn: sa.Connection, *, run_id: str, body: RejectPlan, caller: Caller = IN_PROCESS
) -> Accepted:
    """One rejection closes the gate for good (no quorum: any approver may say no)."""
    run, _ = _gate(conn, run_id, caller.principal)
    canary = run.next_action is NextAction.APPROVE_CANARY
    _record_decision(conn, run, "rejected", body.rejectedBy, body.reason, caller, overrule=canary)
    gates.close_deadline(conn, run_id=run_id, closed_as="answered")
    reason = f": {body.reason}" if body.reason else ""
    what = "canary" if canary else "plan"
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.FAILED,
        event="plan.rejected",
        detail={
            "rejectedBy": body.rejectedBy,
            "reason": body.reason,
            **({"phase": "canary"} if canary else {}),
        },
        allowed_from=WAITING,
        error=f"{what} rejected by {body.rejectedBy}{reason}",
    )
    return Accepted(runId=run_id, status=RunStatus.FAILED)


def _gate(
    conn: sa.Connection, run_id: str, principal: Principal
) -> tuple[runs.RunRow, recipes.RecipeRow]:
    """The run at an open gate, if `principal` may decide it (separation of duties)."""
    run = require_visible_run(conn, principal, run_id=run_id, for_update=True)
    if run.status is not RunStatus.WAITING_INPUT or run.next_action not in GATE_ACTIONS:
        raise IllegalStateError(
            f"run {run_id} is {run.status.value}, not waiting for plan approval",
            {"runId": run_id, "status": run.status.value},
        )
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    assert recipe is not None  # app.runs.recipe_name references app.recipes
    if _self_approval(conn, principal, run_id) and not recipe.allow_self_approval:
        raise SelfApprovalForbiddenError(
            f"key {principal.id} started run {run_id} and may not decide its plan;"
            " another approver must (or the recipe must set allowSelfApproval)",
            {"runId": run_id, "keyId": principal.key_id},
        )
    return run, recipe


def _self_approval(conn: sa.Connection, principal: Principal, run_id: str) -> bool:
    starter = approvals.read_starter(conn, run_id=run_id)
    return principal.key_id is not None and starter.key_id == principal.key_id


def may_decide(conn: sa.Connection, principal: Principal, run: runs.RunRow) -> bool:
    """Whether `principal` may approve or reject the run's plan (its role, and separation
    of duties), so a page shows the gate's buttons only to those who may press them."""
    if not principal.can(Action.DECIDE):
        return False
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    allowed = recipe is not None and recipe.allow_self_approval
    return allowed or not _self_approval(conn, principal, run.id)


def _record_decision(
    conn: sa.Connection,
    run: runs.RunRow,
    decision: str,
    decided_by: str,
    notes: str | None,
    caller: Caller,
    overrule: bool = False,
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
        overrule=overrule,
        workspace_sha256=workspace_sha256,
    )


RETRYABLE = frozenset({RunStatus.RETRIES_EXCEEDED, RunStatus.FAILED})


def retry_run(
    unit: UnitOfWork,
    *,
    run_id: str,
    principal: Principal = ANONYMOUS,
    body: RetryRun | None = None,
) -> RetryAccepted:
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
    raised = _check_retry_budget(conn, run, body or RetryRun())
    from_step = _first_unfinished_step(conn, run_id)
    if raised is not None:
        budgets.raise_sandbox_minutes(conn, run_id=run_id, minutes=raised)
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


def _check_retry_budget(conn: sa.Connection, run: runs.RunRow, body: RetryRun) -> int | None:
    """The raised sandbox budget to retry with (None: unchanged); a run a budget stopped
    retries only with that budget raised.

    Raises:
        QueuePolicyViolationError: the raised budget is over the recipe's cap.
        BudgetExhaustedError: a budget stopped the run and the retry does not raise it.
    """
    recipe = recipes.read_recipe(conn, name=run.recipe_name)
    assert recipe is not None  # app.runs.recipe_name references app.recipes
    requested = body.sandboxMinutes
    if requested is not None and requested > recipe.max_sandbox_minutes:
        raise QueuePolicyViolationError(
            f"sandboxMinutes={requested} exceeds recipe {recipe.name!r} cap of"
            f" {recipe.max_sandbox_minutes}",
            {"field": "sandboxMinutes", "value": requested, "cap": recipe.max_sandbox_minutes},
        )
    stop = _budget_stop(conn, run)
    if stop is None:
        return requested
    report = measure(conn, run, minute_seconds=1.0)
    current = next(b.allowed for b in report.budgets if b.name == SANDBOX_MINUTES)
    if stop != SANDBOX_MINUTES or requested is None or current is None or requested <= current:
        how = (
            'retry with {"sandboxMinutes": N} above it'
            if stop == SANDBOX_MINUTES
            else "it is a recipe cap: raise it in the recipe"
        )
        raise BudgetExhaustedError(
            f"run {run.id} stopped at its {stop} budget; {how}",
            {"runId": run.id, "budget": stop, "allowed": current, "requested": requested},
        )
    return requested


def _budget_stop(conn: sa.Connection, run: runs.RunRow) -> str | None:
    """The budget that ended the run, if its last failure was one."""
    if run.status is not RunStatus.RETRIES_EXCEEDED:
        return None
    last = [
        event
        for event in runs.list_events(conn, run_id=run.id)
        if event.type == "run.retries_exceeded"
    ]
    budget = last[-1].detail.get("budget") if last else None
    return str(budget) if budget else None


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


def comment(
    conn: sa.Connection, *, run_id: str, body: CommentIn, caller: Caller = IN_PROCESS
) -> Accepted:
    """A note on the run's timeline (an event of its own), while the gate is open."""
    run = require_waiting(
        require_visible_run(conn, caller.principal, run_id=run_id, for_update=True)
    )
    detail = {"author": body.author, "text": body.text, "principal": caller.principal.id}
    runs.note_event(conn, run, type="comment", detail=detail)
    return Accepted(runId=run_id, status=run.status)


def require_waiting(run: runs.RunRow) -> runs.RunRow:
    """The run, if it waits at a gate; events are accepted only then (the manual's triage)."""
    if run.status is not RunStatus.WAITING_INPUT:
        raise IllegalStateError(
            f"run {run.id} is {run.status.value}; events are accepted only while"
            " it is waiting_input",
            {"runId": run.id, "status": run.status.value},
        )
    return run


def extend_approval(
    conn: sa.Connection,
    *,
    run_id: str,
    body: ExtendApproval,
    warn_share: float,
    caller: Caller = IN_PROCESS,
) -> ApprovalExtended:
    """Move an open gate's deadline later (the same duties as deciding it)."""
    run, _ = _gate(conn, run_id, caller.principal)
    deadline = gates.read_deadline(conn, run_id=run_id, for_update=True)
    if deadline is None or deadline.closed_at is not None:
        raise IllegalStateError(
            f"the gate of run {run_id} has no deadline to extend",
            {"runId": run_id, "status": run.status.value},
        )
    moved = gates.extend_deadline(conn, run_id=run_id, seconds=body.seconds, warn_share=warn_share)
    runs.note_event(
        conn,
        run,
        type="gate.extended",
        detail={
            "seconds": body.seconds,
            "reason": body.reason,
            "by": caller.principal.id,
            "previousExpiresAt": deadline.expires_at.isoformat(),
            "expiresAt": moved.expires_at.isoformat(),
        },
    )
    return ApprovalExtended(runId=run_id, status=run.status, expiresAt=moved.expires_at.isoformat())
