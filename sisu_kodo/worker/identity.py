"""Executor identity: stable across restarts, never held by two live processes.

A worker holds a PostgreSQL session-level advisory lock named after its executor id
for as long as it lives; the database releases it when the process (or its
connection) dies. An explicit id that is already held refuses to start; the default
id takes the first free slot `<hostname>-worker-<n>`.
"""

from __future__ import annotations

import sqlalchemy as sa

from sisu_kodo.config import ConfigError
from sisu_kodo.deadlines import WaitTimeout, wait_until

MAX_AUTO_SLOTS = 64
# Another worker's recovery sweep holds a dead executor's id while it takes over that
# executor's workflows (a moment); a restart under that id waits this long for it.
SWEEP_HOLD_SECONDS = 5.0


class ExecutorLease:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: sa.Connection | None = None
        self.executor_id = ""

    def acquire(self, *, requested: str | None, prefix: str) -> str:
        conn = self._engine.connect()
        if requested:
            try:
                wait_until(
                    lambda: _try_lock(conn, requested), timeout=SWEEP_HOLD_SECONDS, interval=0.2
                )
            except WaitTimeout:
                conn.close()
                raise ConfigError(
                    f"invalid SISU_EXECUTOR_ID={requested!r}: a live worker already holds it;"
                    " two processes must never share an executor id"
                ) from None
            self._conn, self.executor_id = conn, requested
            return requested
        for candidate in (f"{prefix}-{n}" for n in range(1, MAX_AUTO_SLOTS + 1)):
            if _try_lock(conn, candidate):
                self._conn, self.executor_id = conn, candidate
                return candidate
        conn.close()
        raise ConfigError(f"no free executor id among {prefix}-1..{MAX_AUTO_SLOTS}")

    def try_hold(self, executor_id: str) -> bool:
        """Hold `executor_id` if no live process does (used to prove a worker is dead)."""
        conn = self._engine.connect()
        if _try_lock(conn, executor_id):
            self._conn, self.executor_id = conn, executor_id
            return True
        conn.close()
        return False

    def ensure(self) -> bool:
        """Keep holding the lease across a lost connection (say, a database restart).

        False means another process took the id meanwhile: this one must stop.
        """
        assert self.executor_id, "ensure() needs a held lease"
        try:
            if self._conn is not None:
                self._conn.execute(sa.text("SELECT 1"))
                self._conn.commit()
                return True
        except sa.exc.DBAPIError:
            self._conn = None  # the lock died with the connection; take it again
        return self.try_hold(self.executor_id)

    def release(self) -> None:
        if self._conn is not None:
            # Session advisory locks outlive close(): a pooled connection would keep holding
            # the id. Invalidating ends the database session, and the lock with it.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


def _try_lock(conn: sa.Connection, executor_id: str) -> bool:
    locked = conn.execute(
        sa.text("SELECT pg_try_advisory_lock(hashtextextended('sisu-executor:' || :id, 0))"),
        {"id": executor_id},
    ).scalar_one()
    conn.commit()
    return bool(locked)
