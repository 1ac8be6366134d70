"""The run's workflows: deterministic control flow only; every I/O is a step.

A run executes as two workflows on `intentQ` (same partition key), split at the
approval gate so that a run waiting for a human holds no queue slot:

    run_plan_workflow     capture the workspace (if any) -> CompileST -> DecideST ->
                          gate opened (waiting_input); ends
    (human approves: the API enqueues the continuation)
    run_execute_workflow  ExecuteST: fan out one sandbox_task_workflow per task on sbxQ,
                          at most `workload.concurrency` in flight, then aggregate
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from dbos import DBOS

from sisu_kodo.errors import AppError
from sisu_kodo.notify import delivery as _registers_webhook_workflow  # noqa: F401
from sisu_kodo.workflows.names import EXECUTE_WORKFLOW, PLAN_WORKFLOW, TASK_WORKFLOW
from sisu_kodo.workflows.payloads import BudgetStop, TaskOutcome, TaskRun
from sisu_kodo.workflows.steps import attempts, execution, ledger, planning, workspaces

log = logging.getLogger(__name__)


@DBOS.workflow(name=PLAN_WORKFLOW)
def run_plan_workflow(run_id: str) -> str:
    with _failing_run_on_error(run_id, "planning"):
        start = planning.begin_plan(run_id)
        if start is None:
            return "skipped"
        recorded = start.recorded
        if recorded is None:
            # Captured before planning, so the planner sees the files it plans for.
            workspace = workspaces.capture_workspace(run_id)
            request = start.request
            if workspace is not None:
                request = request.model_copy(update={"workspace": workspace.summary})
            recorded = planning.record_plan(run_id, planning.compile_plan(request))
        planning.decide_and_open_gate(run_id, recorded)
    return "waiting_input"


@DBOS.workflow(name=EXECUTE_WORKFLOW)
def run_execute_workflow(run_id: str) -> str:
    with _failing_run_on_error(run_id, "execution"):
        execution_start = execution.begin_execute(run_id)
        if execution_start is None:
            return "skipped"
        stopped = _fan_out(
            run_id,
            execution_start.tasks,
            concurrency=execution_start.concurrency,
            partition_key=execution_start.partition_key,
            retry_count=execution_start.retry_count,
        )
        return execution.finish_execute(run_id, stopped)


@contextmanager
def _failing_run_on_error(run_id: str, phase: str) -> Iterator[None]:
    """Record any error of the workflow on the run (failed, REPAIR) before it fails.

    The begin step is inside: its output (the intent's inputs) is serialised by DBOS,
    and a failure there would otherwise leave the run queued. DBOS's own errors
    (a step's exhausted retries, a replay mismatch, a checkpoint it cannot write) are
    recorded too; its control signals (cancellation, lost ownership) derive from
    BaseException and pass through untouched. When even the record fails, the original
    error still fails the workflow and the recovery sweep's watchdog fails the run.
    """
    try:
        yield
    except Exception as exc:
        try:
            ledger.fail_run(run_id, f"{phase} failed: {exc}")
        except Exception:
            log.exception("run %s: could not record its %s failure", run_id, phase)
        raise


@DBOS.workflow(name=TASK_WORKFLOW)
def sandbox_task_workflow(run_id: str, task: TaskRun) -> TaskOutcome:
    return attempts.run_sandbox_task(run_id, task)


def _fan_out(
    run_id: str,
    tasks: list[TaskRun],
    *,
    concurrency: int,
    partition_key: str,
    retry_count: int,
) -> BudgetStop | None:
    """Keep at most `concurrency` task workflows of this run in flight (a sliding window).

    The window's bookkeeping is per refill, not per task: every wait frees as many slots
    as have finished, one transaction commits their receipts and checks the run's
    budgets, one enqueue fills the slots. A run that reached a budget starts no new task,
    lets its in-flight tasks finish (or cancels them, SISU_BUDGET_CANCEL_IN_FLIGHT) and
    says which budget. Outcomes are not collected here: each task workflow records its
    own in the ledger, and finish_execute aggregates them from there.
    """
    waiting = list(tasks)
    in_flight: dict[str, str] = {}  # task workflow id -> taskKey
    stopped = execution.check_start(run_id, waiting) if waiting else None
    while True:
        if stopped is not None and waiting:
            waiting = []
            if stopped.cancel_in_flight and in_flight:
                execution.cancel_tasks(list(in_flight))
                break
        free = concurrency - len(in_flight)
        batch, waiting = waiting[:free], waiting[free:]
        if batch:
            enqueued = execution.enqueue_tasks(run_id, batch, partition_key, retry_count)
            in_flight.update(zip(enqueued, (task.spec.taskKey for task in batch), strict=True))
        if not in_flight:
            break
        stopped = _release_finished(run_id, in_flight, check_budgets=bool(waiting)) or stopped
    return stopped


def _release_finished(
    run_id: str, in_flight: dict[str, str], *, check_budgets: bool
) -> BudgetStop | None:
    """Wait for some task workflows to end, free their slots, commit their receipts and
    (while tasks wait for a slot) say which budget the run has reached, if any."""
    ended = execution.await_tasks(run_id, in_flight)
    broken = {wid: status for wid, status in ended.items() if status != "SUCCESS"}
    if broken:
        raise AppError(f"task workflow(s) ended abnormally: {broken}", broken)
    freed = [in_flight.pop(workflow_id) for workflow_id in ended]
    return execution.settle_tasks(run_id, freed, check_budgets=check_budgets)
