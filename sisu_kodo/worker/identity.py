"""Executor identity: stable across restarts, never held by two live processes.

A worker holds a PostgreSQL session-level advisory lock named after its executor id
for as long as it lives; the database releases it when the process (or its
connection) dies. An explicit id that is already held refuses to start; the default
id takes the first free slot `<hostname>-worker-<n>`.
"""

from __future__ import annotations

import sqlalchemy as sa

from sisu_kodo.config import ConfigError

MAX_AUTO_SLOTS = 64


class ExecutorLease:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: sa.Connection | None = None
        self.executor_id = ""

    def acquire(self, *, requested: str | None, prefix: str) -> str:
        conn = self._engine.connect()
        candidates = (
            [requested] if requested else [f"{prefix}-{n}" for n in range(1, MAX_AUTO_SLOTS + 1)]
        )
        for candidate in candidates:
            if _try_lock(conn, candidate):
                self._conn, self.executor_id = conn, candidate
                return candidate
        conn.close()
        if requested:
            raise ConfigError(
                f"invalid SISU_EXECUTOR_ID={requested!r}: a live worker already holds it;"
                " two processes must never share an executor id"
            )
        raise ConfigError(f"no free executor id among {prefix}-1..{MAX_AUTO_SLOTS}")

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _try_lock(conn: sa.Connection, executor_id: str) -> bool:
    locked = conn.execute(
        sa.text("SELECT pg_try_advisory_lock(hashtextextended('sisu-executor:' || :id, 0))"),
        {"id": executor_id},
    ).scalar_one()
    conn.commit()
    return bool(locked)
