"""The worker's heartbeat: proof of life in `app.workers`, read by /healthz and RunViews."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

import sqlalchemy as sa

from sisu_kodo.db import workers
from sisu_kodo.worker.identity import ExecutorLease

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        engine: sa.Engine,
        lease: ExecutorLease,
        *,
        app_version: str,
        period: float,
        on_lease_lost: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._on_lease_lost = on_lease_lost
        self._executor_id = lease.executor_id
        self._app_version = app_version
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sisu-heartbeat", daemon=True)

    def start(self) -> None:
        with self._engine.begin() as conn:
            workers.register(
                conn,
                executor_id=self._executor_id,
                app_version=self._app_version,
                pid=os.getpid(),
                hostname=socket.gethostname(),
            )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self._lease.ensure():
                    log.error("executor id %s was taken by another process", self._executor_id)
                    self._on_lease_lost()
                    return
                with self._engine.begin() as conn:
                    workers.beat(conn, executor_id=self._executor_id)
            except Exception:  # a missed beat is logged; the next one may succeed
                log.warning("heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with self._engine.begin() as conn:
                workers.deregister(conn, executor_id=self._executor_id)
        except Exception:
            log.warning("could not deregister worker %s", self._executor_id, exc_info=True)
