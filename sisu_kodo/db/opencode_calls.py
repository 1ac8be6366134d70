"""OpenCode call ledger: one `opencode_calls` row per planner call attempt.

The row is what makes an LLM call effectively exactly-once: written as soon as the answer
is known, before the DBOS step checkpoints, and read first when the step runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

_COLUMNS = """id, run_id, step_id, attempt, mode, source, agent, schema_hash, fixture_key,
              prompt, prompt_version, reply, plan, detail, duration_ms, tokens, error_code,
              error, created_at"""


@dataclass(frozen=True)
class CallRow:
    id: int
    run_id: str
    step_id: str
    attempt: int
    mode: str
    source: str
    agent: str
    schema_hash: str
    fixture_key: str
    prompt: str
    prompt_version: str
    reply: Any
    plan: dict[str, Any] | None
    detail: str | None
    duration_ms: int
    tokens: dict[str, Any]
    error_code: str | None
    error: str | None
    created_at: datetime


def read_call(conn: sa.Connection, *, run_id: str, step_id: str, attempt: int) -> CallRow | None:
    row = conn.execute(
        sa.text(
            f"""
            SELECT {_COLUMNS} FROM app.opencode_calls
            WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
            """
        ),
        {"run_id": run_id, "step_id": step_id, "attempt": attempt},
    ).one_or_none()
    return CallRow(**row._mapping) if row is not None else None


def list_calls(conn: sa.Connection, *, run_id: str) -> list[CallRow]:
    result = conn.execute(
        sa.text(f"SELECT {_COLUMNS} FROM app.opencode_calls WHERE run_id = :run_id ORDER BY id"),
        {"run_id": run_id},
    )
    return [CallRow(**row._mapping) for row in result]


def record_call(
    conn: sa.Connection,
    *,
    run_id: str,
    step_id: str,
    attempt: int,
    mode: str,
    source: str,
    agent: str,
    schema_hash: str,
    fixture_key: str,
    prompt: str,
    prompt_version: str,
    reply: Any,
    plan: dict[str, Any] | None,
    detail: str | None,
    duration_ms: int,
    tokens: dict[str, Any],
    error_code: str | None,
    error: str | None,
) -> CallRow:
    """Write one attempt's row and return the row that holds; when another execution of
    the same attempt got there first, its row wins and is returned."""
    conn.execute(
        sa.text(
            """
            INSERT INTO app.opencode_calls (run_id, step_id, attempt, mode, source, agent,
                schema_hash, fixture_key, prompt, prompt_version, reply, plan, detail,
                duration_ms, tokens, error_code, error)
            VALUES (:run_id, :step_id, :attempt, :mode, :source, :agent, :schema_hash,
                :fixture_key, :prompt, :prompt_version, :reply, :plan, :detail, :duration_ms,
                :tokens, :error_code, :error)
            ON CONFLICT (run_id, step_id, attempt) DO NOTHING
            """
        ).bindparams(
            sa.bindparam("reply", type_=JSONB(none_as_null=True)),
            sa.bindparam("plan", type_=JSONB(none_as_null=True)),
            sa.bindparam("tokens", type_=JSONB),
        ),
        {
            "run_id": run_id,
            "step_id": step_id,
            "attempt": attempt,
            "mode": mode,
            "source": source,
            "agent": agent,
            "schema_hash": schema_hash,
            "fixture_key": fixture_key,
            "prompt": prompt,
            "prompt_version": prompt_version,
            "reply": reply,
            "plan": plan,
            "detail": detail,
            "duration_ms": duration_ms,
            "tokens": tokens,
            "error_code": error_code,
            "error": error,
        },
    )
    stored = read_call(conn, run_id=run_id, step_id=step_id, attempt=attempt)
    assert stored is not None, "inserted or already present"
    return stored
