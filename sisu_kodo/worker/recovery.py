"""Cross-worker recovery: resume the workflows of workers that died.

Open-source DBOS recovers only a process's own executor id at start-up, so a worker
that dies and never comes back would strand its PENDING workflows (and their queue
slots) for ever. Every worker therefore sweeps periodically: an executor that owns
PENDING workflows is dead when its executor lease (a PostgreSQL advisory lock held by
every live worker, see `identity.py`) can be taken. While holding that lease the sweep
re-enqueues the dead executor's workflows on their own queues; live workers then
dequeue and replay them from their last checkpoint, so nothing runs twice. An executor
whose heartbeat is still fresh is left alone even if its lease is free: its lease
connection may merely have dropped (a database restart) and is being re-taken.

The same loop runs the run watchdog (`RunWatchdog`): no run is ever stuck. A queued or
running run whose current workflows DBOS holds as ended abnormally, or not at all, is
failed with REPAIR, so that a retry can take it on (see `db/stuck_runs.py`).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, WorkflowStatus

from sisu_kodo.config import APP_NAME
from sisu_kodo.contracts.runs import NextAction, RunStatus
from sisu_kodo.db import recovery, runs, stuck_runs, workers
from sisu_kodo.worker.identity import ExecutorLease
from sisu_kodo.worker.periodic import Periodic

log = logging.getLogger(__name__)


class RecoverySweep:
    def __init__(
        self,
        engine: sa.Engine,
        client: DBOSClient,
        *,
        executor_id: str,
        period: float,
        heartbeat_ttl: float,
        watchdog: RunWatchdog | None = None,
    ) -> None:
        self._heartbeat_ttl = heartbeat_ttl
        self._engine = engine
        self._client = client
        self._executor_id = executor_id
        self._duties = [Periodic("sisu-recovery", self.sweep_once, period=period)]
        if watchdog is not None:
            self._duties.append(Periodic("sisu-watchdog", watchdog.sweep_once, period=period))

    def start(self) -> None:
        for duty in self._duties:
            duty.start()

    def stop(self) -> None:
        for duty in self._duties:
            duty.stop()

    def sweep_once(self) -> int:
        """Take over every dead executor's PENDING workflows; returns how many."""
        candidates = recovery.executors_with_pending_work(
            self._client, app_name=APP_NAME, exclude=self._executor_id
        )
        with self._engine.connect() as conn:
            beating = {
                row.executor_id
                for row in workers.list_workers(conn, ttl_seconds=self._heartbeat_ttl)
                if row.alive
            }
        taken = 0
        for executor_id in candidates:
            if executor_id in beating:
                continue  # still heartbeating: maybe only its lease connection dropped
            lease = ExecutorLease(self._engine)
            if not lease.try_hold(executor_id):
                continue  # a live worker holds it
            try:
                taken += self._take_over(executor_id)
            finally:
                lease.release()
        return taken

    def _take_over(self, dead: str) -> int:
        pending = recovery.pending_workflows(self._client, app_name=APP_NAME, executor_id=dead)
        try:
            for workflow_id, queue_name in pending:
                DBOS.resume_workflow(workflow_id, queue_name=queue_name)
        finally:
            # We hold the dead executor's lease, so it is dead whatever a resume said: a
            # resume that raised (its workflow ended meanwhile) must not leave its row behind.
            with self._engine.begin() as conn:
                workers.deregister(conn, executor_id=dead)
        if pending:
            log.warning(
                "executor %s is dead; %s took over %d workflow(s)",
                dead,
                self._executor_id,
                len(pending),
            )
        return len(pending)


class RunWatchdog:
    """Fails the runs that nothing will move again (failed, REPAIR, one `run.failed` event).

    Each sweep reads one batch of still runs (walking all of them over successive
    sweeps) and confirms every stuck one under its row lock before failing it, so
    several workers sweeping at once fail a run once, and a run that moved meanwhile
    (approved, retried, picked up) is left alone.
    """

    def __init__(
        self, engine: sa.Engine, client: DBOSClient, *, grace_seconds: float, batch: int
    ) -> None:
        self._engine = engine
        self._client = client
        self._grace_seconds = grace_seconds
        self._batch = batch
        self._after = ""

    def sweep_once(self) -> list[str]:
        """Fail the stuck runs of the next batch; returns their ids."""
        with self._engine.connect() as conn:
            scan = stuck_runs.scan_stuck_runs(
                conn,
                self._client,
                grace_seconds=self._grace_seconds,
                after=self._after,
                limit=self._batch,
            )
        self._after = scan.next_after or ""
        return [stuck.run.id for stuck in scan.stuck if self._fail(stuck)]

    def _fail(self, seen: stuck_runs.StuckRun) -> bool:
        with self._engine.begin() as conn:
            run = runs.read_run(conn, run_id=seen.run.id, for_update=True)
            if run is None or (run.status, run.retry_count, run.updated_at) != (
                seen.run.status,
                seen.run.retry_count,
                seen.run.updated_at,
            ):
                return False  # it moved since the scan: not stuck after all
            # Under the lock nothing can enqueue this run's workflows: look again.
            found = self._statuses_with_errors(seen.run.current_workflow_ids)
            stuck = stuck_runs.judge(seen.run, {wid: wf.status for wid, wf in found.items()})
            if stuck is None:
                return False
            broken = found.get(stuck.broken) if stuck.broken else None
            error = stuck.reason(stuck_runs.error_text(broken.error if broken else None))
            runs.transition(
                conn,
                run_id=run.id,
                status=RunStatus.FAILED,
                event="run.failed",
                detail={"watchdog": True, "error": error, "workflows": stuck.workflows},
                next_action=NextAction.REPAIR,
                error=error,
            )
        log.warning("run %s failed by the watchdog: %s", run.id, error)
        return True

    def _statuses_with_errors(self, workflow_ids: list[str]) -> dict[str, WorkflowStatus]:
        try:
            return stuck_runs.workflow_statuses(self._client, workflow_ids, with_errors=True)
        except Exception:  # an error DBOS cannot unpickle must not keep the run stuck
            log.warning("could not read the errors of %s", workflow_ids, exc_info=True)
            return stuck_runs.workflow_statuses(self._client, workflow_ids)
