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
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from dbos import DBOS, DBOSClient

from sisu_kodo.config import APP_NAME
from sisu_kodo.db import recovery, workers
from sisu_kodo.worker.identity import ExecutorLease

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
    ) -> None:
        self._heartbeat_ttl = heartbeat_ttl
        self._engine = engine
        self._client = client
        self._executor_id = executor_id
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sisu-recovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.sweep_once()
            except Exception:  # the next sweep retries; a worker must not die of this
                log.warning("recovery sweep failed", exc_info=True)

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
        for workflow_id, queue_name in pending:
            DBOS.resume_workflow(workflow_id, queue_name=queue_name)
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
