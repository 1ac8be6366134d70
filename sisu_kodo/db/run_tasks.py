"""DecideST's tasks as rows (`app.run_tasks`), and ExecuteST's progress counted over them.

The task-list artifact is the record the approval binds to; these rows mirror it so a
10,000-task run's RunView reads one page and a few counts, not the whole list.
"""

from __future__ import annotations

from collections import Counter

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
    return [
        TaskView(taskKey=key, index=index, name=name, command=command, status="pending")
        for key, index, name, command in rows
    ]


def count_by_status(
    conn: sa.Connection, *, run_id: str, step_id: str, max_attempts: int
) -> Counter[str]:
    """The run's decided tasks by the status of their latest attempt (TaskView's statuses)."""
    rows = conn.execute(
        sa.text(
            f"""
            SELECT CASE WHEN latest.err_code IS NULL THEN 'pending'
                        WHEN latest.err_code = 'NONE' THEN 'succeeded'
                        WHEN {FINAL_ATTEMPT} THEN 'failed'
                        ELSE 'retrying' END AS status,
                   COUNT(*)
              FROM app.run_tasks t
              LEFT JOIN (
                  SELECT DISTINCT ON (task_key) task_key, err_code, attempt, attempt_offset
                    FROM app.sbx_runs WHERE run_id = :run_id AND step_id = :step_id
                   ORDER BY task_key, attempt DESC
              ) latest ON latest.task_key = t.task_key
             WHERE t.run_id = :run_id
             GROUP BY 1
            """
        ),
        {"run_id": run_id, "step_id": step_id, **final_attempt_params(max_attempts)},
    ).all()
    return Counter({status: int(count) for status, count in rows})
