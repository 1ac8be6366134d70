"""Approval deadlines (app.gate_deadlines): opened with the gate, warned, moved, closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa


@dataclass(frozen=True)
class DeadlineRow:
    run_id: str
    opened_at: datetime
    ttl_seconds: int
    warn_at: datetime
    expires_at: datetime
    warned_at: datetime | None
    closed_at: datetime | None
    closed_as: str | None


_COLUMNS = "run_id, opened_at, ttl_seconds, warn_at, expires_at, warned_at, closed_at, closed_as"


def open_deadline(
    conn: sa.Connection, *, run_id: str, ttl_seconds: int, warn_share: float
) -> DeadlineRow:
    """Start (or, on a re-decided retry, restart) the gate's clock now."""
    row = conn.execute(
        sa.text(
            f"""
            INSERT INTO app.gate_deadlines (run_id, opened_at, ttl_seconds, warn_at, expires_at)
            VALUES (:run_id, now(), :ttl, now() + make_interval(secs => :ttl * :share),
                    now() + make_interval(secs => :ttl))
            ON CONFLICT (run_id) DO UPDATE SET opened_at = EXCLUDED.opened_at,
                ttl_seconds = EXCLUDED.ttl_seconds, warn_at = EXCLUDED.warn_at,
                expires_at = EXCLUDED.expires_at, warned_at = NULL, closed_at = NULL,
                closed_as = NULL
            RETURNING {_COLUMNS}
            """
        ),
        {"run_id": run_id, "ttl": ttl_seconds, "share": warn_share},
    ).one()
    return DeadlineRow(*row)


def read_deadline(
    conn: sa.Connection, *, run_id: str, for_update: bool = False
) -> DeadlineRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        sa.text(f"SELECT {_COLUMNS} FROM app.gate_deadlines WHERE run_id = :run_id{lock}"),
        {"run_id": run_id},
    ).one_or_none()
    return DeadlineRow(*row) if row else None


def extend_deadline(
    conn: sa.Connection, *, run_id: str, seconds: int, warn_share: float
) -> DeadlineRow:
    """Move the deadline `seconds` later; the warning is re-armed for the new remainder."""
    row = conn.execute(
        sa.text(
            f"""
            UPDATE app.gate_deadlines
               SET expires_at = expires_at + make_interval(secs => :seconds),
                   warn_at = now() + (expires_at + make_interval(secs => :seconds) - now())
                             * :share,
                   warned_at = NULL
             WHERE run_id = :run_id AND closed_at IS NULL
            RETURNING {_COLUMNS}
            """
        ),
        {"run_id": run_id, "seconds": seconds, "share": warn_share},
    ).one()
    return DeadlineRow(*row)


_DUE = {
    # the warning: not yet given, its time has come
    "warning": "warned_at IS NULL AND warn_at <= now()",
    # the deadline itself
    "expiry": "expires_at <= now()",
}


def list_due(conn: sa.Connection, *, due: str, limit: int = 100) -> list[str]:
    """Open gates whose warning (`due="warning"`) or deadline (`"expiry"`) has come."""
    return list(
        conn.execute(
            sa.text(
                f"SELECT run_id FROM app.gate_deadlines WHERE closed_at IS NULL AND {_DUE[due]}"
                " ORDER BY expires_at LIMIT :limit"
            ),
            {"limit": limit},
        ).scalars()
    )


def lock_if_due(conn: sa.Connection, *, run_id: str, due: str) -> DeadlineRow | None:
    """The gate's deadline, locked, if it is still open and due; None otherwise (another
    worker's sweep, or an answer, got there first). Callers lock the run row first: the
    order every gate transaction takes (runs, then gate_deadlines)."""
    row = conn.execute(
        sa.text(
            f"SELECT {_COLUMNS} FROM app.gate_deadlines WHERE run_id = :run_id"
            f" AND closed_at IS NULL AND {_DUE[due]} FOR UPDATE"
        ),
        {"run_id": run_id},
    ).one_or_none()
    return DeadlineRow(*row) if row else None


def mark_warned(conn: sa.Connection, *, run_id: str) -> None:
    conn.execute(
        sa.text("UPDATE app.gate_deadlines SET warned_at = now() WHERE run_id = :run_id"),
        {"run_id": run_id},
    )


def close_deadline(conn: sa.Connection, *, run_id: str, closed_as: str) -> None:
    """The gate was answered (or expired): its clock stops. No deadline: nothing to do."""
    conn.execute(
        sa.text(
            "UPDATE app.gate_deadlines SET closed_at = now(), closed_as = :closed_as"
            " WHERE run_id = :run_id AND closed_at IS NULL"
        ),
        {"run_id": run_id, "closed_as": closed_as},
    )
