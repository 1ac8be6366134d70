"""The worker's task listener: one connection LISTENing for recorded task attempts.

Each notice wakes the fan-outs of its run waiting in this process (`TaskWakeups`), so
a run waiting on long tasks costs the database nothing until one of them ends, instead
of a status poll every few milliseconds. Notices sent while the listener is down are
lost: it wakes every waiter when it (re)connects, and each waiter also rechecks on its
own every SISU_TASK_RECHECK_SECONDS.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from sisu_kodo.db.task_notices import CHANNEL
from sisu_kodo.workflows.wakeups import TaskWakeups

log = logging.getLogger(__name__)

# How long one wait for notices lasts: the bound on how late `stop` is noticed.
LISTEN_SLICE_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


class TaskListener:
    def __init__(self, url: str, wakeups: TaskWakeups) -> None:
        """Listen on the ledger database of `url` (a libpq URL)."""
        self._url = url
        self._wakeups = wakeups
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sisu-task-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error:  # the database went away; waiters recheck meanwhile
                log.warning("task listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            self._wakeups.wake_all()
            while not self._stop.is_set():
                for notice in conn.notifies(timeout=LISTEN_SLICE_SECONDS):
                    self._wakeups.wake(notice.payload)
