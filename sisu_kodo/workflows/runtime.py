"""The worker's collaborators, bound once before DBOS launches.

Steps reach the database, the planner and the sandbox provider only through
`current()`, so the worker entry point is the one place that decides what they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from dbos import DBOSClient, SQLAlchemyDatasource

from sisu_kodo.blobs.port import BlobStore, Spill
from sisu_kodo.config import Settings
from sisu_kodo.oc.port import Planner
from sisu_kodo.sbx.port import SandboxProvider
from sisu_kodo.workflows.wakeups import TaskWakeups


class TaskSteps:
    """(runId, taskKey) of the task steps running in this process.

    The cancel watcher stops the attempts of an ended run; it collects and records
    itself only those no step here waits for (left by a worker that died).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def running(self, run_id: str, task_key: str) -> Iterator[None]:
        with self._lock:
            self._running[(run_id, task_key)] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[(run_id, task_key)] -= 1
                if not self._running[(run_id, task_key)]:
                    del self._running[(run_id, task_key)]

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._running


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: sa.Engine
    system_engine: sa.Engine
    client: DBOSClient
    datasource: SQLAlchemyDatasource
    planner: Planner
    sandbox: SandboxProvider
    # Set by the worker's task listener; fan-outs waiting on their tasks sleep on it.
    wakeups: TaskWakeups = field(default_factory=TaskWakeups)
    task_steps: TaskSteps = field(default_factory=TaskSteps)
    # Workspace snapshots and large task outputs (SISU_BLOB_STORE).
    blobs: BlobStore | None = None
    # The task attempts' own pool, without a ping per checkout (three per attempt): every
    # use is under `reconnecting`, which retries on a fresh connection after a database
    # restart. Without one, attempts use `engine`.
    attempt_engine: sa.Engine | None = None

    @property
    def attempts(self) -> sa.Engine:
        """The engine task attempts record their ledger rows on."""
        return self.attempt_engine or self.engine

    def spill(self) -> Spill | None:
        """Where task outputs above SISU_ARTIFACT_INLINE_MAX_BYTES go, if anywhere."""
        if self.blobs is None:
            return None
        return Spill(self.blobs, self.settings.workspaces.inline_max_bytes)

    def require_blobs(self) -> BlobStore:
        if self.blobs is None:
            raise RuntimeError("no blob store bound: a workspace run needs one")
        return self.blobs


log = logging.getLogger(__name__)

_runtime: Runtime | None = None


def bind(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workflow runtime not bound; start workflows through `sisu worker`")
    return _runtime


def chaos_pause(point: str) -> None:
    """Hold still at `point` when SISU_CHAOS_PAUSE asks for it: a window for crash drills."""
    if _runtime is None:
        return
    seconds = _runtime.settings.queues.chaos_pause.get(point)
    if seconds:
        log.warning("chaos pause at %s for %.1fs (SISU_CHAOS_PAUSE)", point, seconds)
        time.sleep(seconds)


def unbind() -> None:
    """Forget the bound runtime (a process that ran a worker in-process, such as a test)."""
    global _runtime
    _runtime = None
