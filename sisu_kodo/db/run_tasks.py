"""DecideST's tasks as rows (`app.run_tasks`), and ExecuteST's progress counted over them.

The task-list artifact is the record the approval binds to; these rows mirror it so a
10,000-task run's RunView reads one page and a few counts, not the whole list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import TaskView
from sisu_kodo.db.sandbox_runs import FINAL_ATTEMPT, final_attempt_params


def record_tasks(conn: sa.Connection, *, run_id: str, tasks: list[TaskSpec]) -> None:
    """Make the run's rows exactly `tasks` (a re-decided run replaces its earlier list)."""
    conn.execute(sa.text("DELETE FROM app.run_tasks WHERE run_id = :run_id"), {"run_id": run_id})
    conn.execute(
        sa.text(
            """
            INSERT INTO app.run_tasks (run_id, position, task_key, task_index, name, command)
            SELECT :run_id, t.ordinality - 1, t.task->>'taskKey', (t.task->>'index')::int,
                   t.task->>'name', t.task->>'command'
              FROM jsonb_array_elements(:tasks) WITH ORDINALITY AS t(task, ordinality)
            """
        ).bindparams(sa.bindparam("tasks", type_=JSONB)),
        {
            "run_id": run_id,
            "tasks": [
                task.model_dump(include={"taskKey", "index", "name", "command"}) for task in tasks
            ],
        },
    )


def count_tasks(conn: sa.Connection, *, run_id: str) -> int:
    return int(
        conn.execute(
            sa.text("SELECT COUNT(*) FROM app.run_tasks WHERE run_id = :run_id"),
            {"run_id": run_id},
        ).scalar_one()
    )


def read_pending_view(conn: sa.Connection, *, run_id: str, task_key: str) -> TaskView | None:
    """One decided task as a view with no attempt yet, or None when the run has no such task."""
    row = conn.execute(
        sa.text(
            "SELECT task_key, task_index, name, command FROM app.run_tasks"
            " WHERE run_id = :run_id AND task_key = :task_key"
        ),
        {"run_id": run_id, "task_key": task_key},
    ).one_or_none()
    if row is None:
        return None
    key, index, name, command = row
    return TaskView(taskKey=key, index=index, name=name, command=command, status="pending")


def read_task_name(conn: sa.Connection, *, run_id: str, task_key: str) -> str | None:
    """The name of the run's task `task_key`, or None when the run has no such task."""
    name: str | None = conn.execute(
        sa.text("SELECT name FROM app.run_tasks WHERE run_id = :run_id AND task_key = :key"),
        {"run_id": run_id, "key": task_key},
    ).scalar_one_or_none()
    return name


def list_task_keys(conn: sa.Connection, *, run_id: str) -> list[str]:
    """The run's task keys in task-list order."""
    return list(
        conn.execute(
            sa.text("SELECT task_key FROM app.run_tasks WHERE run_id = :run_id ORDER BY position"),
            {"run_id": run_id},
        ).scalars()
    )


def list_pending_views(
    conn: sa.Connection, *, run_id: str, offset: int, limit: int
) -> list[TaskView]:
    """A page of the decided tasks, in task-list order, as views with no attempt yet."""
    rows = conn.execute(
        sa.text(
            "SELECT task_key, task_index, name, command FROM app.run_tasks"
            " WHERE run_id = :run_id ORDER BY position OFFSET :offset LIMIT :limit"
        ),
        {"run_id": run_id, "offset": offset, "limit": limit},
    ).all()
    return _pending_views(rows)


def _pending_views(rows: Sequence[sa.Row[*tuple[Any, ...]]]) -> list[TaskView]:
    return [
        TaskView(taskKey=key, index=index, name=name, command=command, status="pending")
        for key, index, name, command in rows
    ]


# The status of a decided task `t` by its latest attempt `latest` (TaskView's statuses).
_TASK_STATUS = f"""
    CASE WHEN latest.err_code IS NULL THEN 'pending'
         WHEN latest.err_code = 'NONE' THEN 'succeeded'
         WHEN {FINAL_ATTEMPT} THEN 'failed'
         ELSE 'retrying' END
"""
# Decided tasks of the runs in :run_ids joined with their latest attempt in :step_id.
_WITH_LATEST = """
    app.run_tasks t
    LEFT JOIN (
        SELECT DISTINCT ON (run_id, task_key) run_id, task_key, err_code, attempt, attempt_offset
          FROM app.sbx_runs WHERE run_id = ANY(:run_ids) AND step_id = :step_id
         ORDER BY run_id, task_key, attempt DESC
    ) latest ON latest.run_id = t.run_id AND latest.task_key = t.task_key
"""


def count_by_status(
    conn: sa.Connection, *, run_id: str, step_id: str, max_attempts: int
) -> Counter[str]:
    """The run's decided tasks by the status of their latest attempt (TaskView's statuses)."""
    counts = count_by_status_of_runs(
        conn, run_ids=[run_id], step_id=step_id, max_attempts=max_attempts
    )
    return counts.get(run_id, Counter())


def count_by_status_of_runs(
    conn: sa.Connection, *, run_ids: list[str], step_id: str, max_attempts: int
) -> dict[str, Counter[str]]:
    """`count_by_status` of several runs in one query (a page of the run list)."""
    rows = conn.execute(
        sa.text(
            f"SELECT t.run_id, {_TASK_STATUS} AS status, COUNT(*) FROM {_WITH_LATEST}"
            " WHERE t.run_id = ANY(:run_ids) GROUP BY 1, 2"
        ),
        {"run_ids": run_ids, "step_id": step_id, **final_attempt_params(max_attempts)},
    ).all()
    counts: dict[str, Counter[str]] = {}
    for run_id, status, count in rows:
        counts.setdefault(run_id, Counter())[status] = int(count)
    return counts


def list_views_with_status(
    conn: sa.Connection,
    *,
    run_id: str,
    step_id: str,
    status: str,
    max_attempts: int,
    offset: int,
    limit: int,
) -> list[TaskView]:
    """A page of the decided tasks whose latest attempt gives them `status`, in task-list
    order, as views with no attempt yet (the caller fills the attempts in)."""
    rows = conn.execute(
        sa.text(
            f"SELECT t.task_key, t.task_index, t.name, t.command FROM {_WITH_LATEST}"
            f" WHERE t.run_id = :run_id AND {_TASK_STATUS} = :status"
            " ORDER BY t.position OFFSET :offset LIMIT :limit"
        ),
        {
            "run_ids": [run_id],
            "run_id": run_id,
            "step_id": step_id,
            "status": status,
            "offset": offset,
            "limit": limit,
            **final_attempt_params(max_attempts),
        },
    ).all()
    return _pending_views(rows)
