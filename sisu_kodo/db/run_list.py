"""The run list: runs filtered, keyset-paged and counted by status in SQL.

Pages are keyset pages over (created_at, id), so a run inserted while a reader pages
lands before the first page (newest first) or after the last (oldest first), never in
the middle: no run is shown twice or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sisu_kodo.contracts.ops import RunQuery
from sisu_kodo.contracts.runs import NextAction, RunStatus


@dataclass(frozen=True)
class RunListRow:
    id: str
    intent_id: str
    goal: str
    queue_partition_key: str
    recipe_name: str
    status: RunStatus
    last_step: str | None
    next_action: NextAction
    error: str | None
    retry_count: int
    created_at: datetime
    updated_at: datetime
    started_by_key_id: str | None
    started_by_name: str | None
    approved_by_key_id: str | None
    approved_by_name: str | None


@dataclass(frozen=True)
class Scope:
    """What one caller may see: None is every tenant."""

    tenants: frozenset[str] | None


Position = tuple[datetime, str]  # (created_at, id) of the last run of the previous page


def _where(query: RunQuery, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The filter as SQL over `app.runs r JOIN app.intents i`, with its parameters."""
    q = query.q
    params: dict[str, Any] = {
        "every": scope.tenants is None,
        "scope": sorted(scope.tenants or ()),
        "statuses": [status.value for status in query.status],
        "tenant": query.tenant,
        "recipe": query.recipe,
        "q": q,
        "pattern": None if q is None else "%" + _escape_like(q) + "%",
        "after": query.created_after,
        "before": query.created_before,
    }
    sql = """
        (CAST(:every AS boolean) OR r.queue_partition_key = ANY(CAST(:scope AS text[])))
        AND (cardinality(CAST(:statuses AS text[])) = 0
             OR r.status = ANY(CAST(:statuses AS text[])))
        AND (CAST(:tenant AS text) IS NULL OR r.queue_partition_key = :tenant)
        AND (CAST(:recipe AS text) IS NULL OR r.recipe_name = :recipe)
        AND (CAST(:q AS text) IS NULL OR i.goal ILIKE :pattern
             OR r.id = :q OR r.intent_id = :q)
        AND (CAST(:after AS timestamptz) IS NULL OR r.created_at >= :after)
        AND (CAST(:before AS timestamptz) IS NULL OR r.created_at < :before)
    """
    return sql, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_runs(
    conn: sa.Connection,
    *,
    query: RunQuery,
    scope: Scope,
    position: Position | None = None,
    limit: int | None = None,
) -> list[RunListRow]:
    """Up to `limit` (default query.limit) runs matching `query` after `position`."""
    where, params = _where(query, scope)
    direction, compare = ("ASC", ">") if query.oldest_first else ("DESC", "<")
    if position is not None:
        where += f" AND (r.created_at, r.id) {compare} (:at, :id)"
        params.update(at=position[0], id=position[1])
    rows = conn.execute(
        sa.text(
            f"""
            SELECT r.id, r.intent_id, split_part(i.goal, E'\\n', 1), r.queue_partition_key,
                   r.recipe_name, r.status, r.last_step, r.next_action, r.error,
                   r.retry_count, r.created_at, r.updated_at, r.started_by_key_id,
                   r.started_by_name, a.key_id, COALESCE(a.key_name, a.decided_by)
              FROM app.runs r
              JOIN app.intents i ON i.id = r.intent_id
              LEFT JOIN app.plan_approvals a ON a.run_id = r.id AND a.decision = 'approved'
             WHERE {where}
             ORDER BY r.created_at {direction}, r.id {direction}
             LIMIT :limit
            """
        ),
        {**params, "limit": query.limit if limit is None else limit},
    ).all()
    return [_row(row) for row in rows]


def _row(row: sa.Row[Any]) -> RunListRow:
    values = list(row)
    values[5] = RunStatus(values[5])
    values[7] = NextAction(values[7])
    return RunListRow(*values)


def count_runs(conn: sa.Connection, *, query: RunQuery, scope: Scope) -> dict[RunStatus, int]:
    """Runs matching `query` per status (the cursor and limit play no part)."""
    where, params = _where(query, scope)
    rows = conn.execute(
        sa.text(
            "SELECT r.status, COUNT(*) FROM app.runs r JOIN app.intents i ON i.id = r.intent_id"
            f" WHERE {where} GROUP BY 1"
        ),
        params,
    ).all()
    return {RunStatus(status): int(count) for status, count in rows}
