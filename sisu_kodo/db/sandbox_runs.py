"""Sandbox ledger: one `sbx_runs` row per task attempt and one receipt per executed task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sisu_kodo.canonical import sha256_hex
from sisu_kodo.contracts.sandbox import ErrCode

_ATTEMPT_COLUMNS = (
    "task_key, attempt, provider, response, err_code, metrics, created_at, attempt_offset"
)


@dataclass(frozen=True)
class AttemptRow:
    task_key: str
    attempt: int
    provider: str
    response: dict[str, Any]
    err_code: str
    metrics: dict[str, Any]
    created_at: datetime
    attempt_offset: int  # attempts of the task's earlier retry rounds

    @property
    def round_attempt(self) -> int:
        """The attempt's number within its retry round (1 for a round's first attempt)."""
        return self.attempt - self.attempt_offset


def record_attempt(
    conn: sa.Connection,
    *,
    run_id: str,
    step_id: str,
    task_key: str,
    attempt: int,
    attempt_offset: int,
    provider: str,
    request: dict[str, Any],
    response: dict[str, Any],
    err_code: str,
    metrics: dict[str, Any],
) -> bool:
    """Write one attempt's row; False when the attempt was already recorded (the first
    execution of an attempt wins, so a re-run after a crash changes nothing)."""
    result = conn.execute(
        sa.text(
            """
            INSERT INTO app.sbx_runs (run_id, step_id, task_key, attempt, attempt_offset,
                                      provider, request, response, err_code, metrics)
            VALUES (:run_id, :step_id, :task_key, :attempt, :attempt_offset, :provider,
                    :request, :response, :err_code, :metrics)
            ON CONFLICT (run_id, step_id, task_key, attempt) DO NOTHING
            """
        ).bindparams(
            sa.bindparam("request", type_=JSONB),
            sa.bindparam("response", type_=JSONB),
            sa.bindparam("metrics", type_=JSONB),
        ),
        {
            "run_id": run_id,
            "step_id": step_id,
            "task_key": task_key,
            "attempt": attempt,
            "attempt_offset": attempt_offset,
            "provider": provider,
            "request": request,
            "response": response,
            "err_code": err_code,
            "metrics": metrics,
        },
    )
    return result.rowcount == 1


def read_attempt(
    conn: sa.Connection, *, run_id: str, step_id: str, task_key: str, attempt: int
) -> AttemptRow | None:
    row = conn.execute(
        sa.text(
            f"SELECT {_ATTEMPT_COLUMNS} FROM app.sbx_runs"
            " WHERE run_id = :run_id AND step_id = :step_id"
            " AND task_key = :task_key AND attempt = :attempt"
        ),
        {"run_id": run_id, "step_id": step_id, "task_key": task_key, "attempt": attempt},
    ).one_or_none()
    return AttemptRow(*row) if row else None


def succeeded_task_keys(
    conn: sa.Connection, *, run_id: str, step_id: str, task_keys: list[str]
) -> list[str]:
    """Which of `task_keys` have a succeeded attempt."""
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT task_key FROM app.sbx_runs WHERE run_id = :run_id"
            " AND step_id = :step_id AND task_key = ANY(:keys) AND err_code = 'NONE'"
        ),
        {"run_id": run_id, "step_id": step_id, "keys": task_keys},
    ).all()
    return sorted(row[0] for row in rows)


def receipt_key(run_id: str, task_key: str) -> str:
    return sha256_hex(f"{run_id}:ExecuteST:{task_key}")


def record_receipts(conn: sa.Connection, *, run_id: str, task_keys: list[str]) -> None:
    """Count one observed side effect of each task (distinct keys), in one statement.

    Must run exactly once per task (inside a DBOS datasource transaction): the manual's
    oracle `seen_count > 1` finds any side effect that happened twice.
    """
    if not task_keys:
        return
    conn.execute(
        sa.text(
            """
            INSERT INTO app.mock_receipts (receipt_key, run_id, task_key)
            SELECT receipt.key, :run_id, receipt.task_key
            FROM unnest(CAST(:keys AS text[]), CAST(:task_keys AS text[]))
                AS receipt(key, task_key)
            ON CONFLICT (receipt_key) DO UPDATE
                SET seen_count = app.mock_receipts.seen_count + 1, last_seen_at = now()
            """
        ),
        {
            "run_id": run_id,
            "keys": [receipt_key(run_id, task_key) for task_key in task_keys],
            "task_keys": task_keys,
        },
    )


def latest_attempts(
    conn: sa.Connection, *, run_id: str, step_id: str, task_keys: list[str] | None = None
) -> dict[str, AttemptRow]:
    rows = conn.execute(
        sa.text(
            f"""
            SELECT DISTINCT ON (task_key) {_ATTEMPT_COLUMNS}
            FROM app.sbx_runs WHERE run_id = :run_id AND step_id = :step_id
              AND (CAST(:keys AS text[]) IS NULL OR task_key = ANY(:keys))
            ORDER BY task_key, attempt DESC
            """
        ),
        {"run_id": run_id, "step_id": step_id, "keys": task_keys},
    ).all()
    return {row[0]: AttemptRow(*row) for row in rows}


def count_attempts_by_code(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.text("SELECT err_code, COUNT(*) FROM app.sbx_runs GROUP BY 1")).all()
    return dict(rows)


# A latest attempt is final when it succeeded, failed for good, or used up its round.
FINAL_ATTEMPT = (
    "(err_code = 'NONE' OR err_code = ANY(:final) OR attempt - attempt_offset >= :max_attempts)"
)


def final_attempt_params(max_attempts: int) -> dict[str, Any]:
    return {
        "final": [code.value for code in ErrCode if not code.retryable],
        "max_attempts": max_attempts,
    }


def final_task_keys(
    conn: sa.Connection, *, run_id: str, step_id: str, task_keys: list[str], max_attempts: int
) -> set[str]:
    """Which of `task_keys` have a final latest attempt (their workflows are ending)."""
    rows = conn.execute(
        sa.text(
            f"""
            SELECT task_key FROM (
                SELECT DISTINCT ON (task_key) task_key, err_code, attempt, attempt_offset
                FROM app.sbx_runs
                WHERE run_id = :run_id AND step_id = :step_id AND task_key = ANY(:keys)
                ORDER BY task_key, attempt DESC
            ) latest
            WHERE {FINAL_ATTEMPT}
            """
        ),
        {
            "run_id": run_id,
            "step_id": step_id,
            "keys": task_keys,
            **final_attempt_params(max_attempts),
        },
    ).all()
    return {row[0] for row in rows}
