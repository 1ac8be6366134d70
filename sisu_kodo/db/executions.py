"""ExecuteST as the ledger knows it: each decided task with its latest attempt.

Used by the RunView while a fan-out runs, and by a retry to tell the tasks that already
succeeded (kept, never re-executed) from those that get a new attempt.
"""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import TypeAdapter

from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import StepId, TaskView
from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.db import artifacts, sandbox_runs

_TASK_LIST = TypeAdapter(list[TaskSpec])


def parse_task_list(content: bytes) -> list[TaskSpec]:
    """The tasks of DecideST's `task_list` artifact."""
    return _TASK_LIST.validate_json(content)


def decided_tasks(conn: sa.Connection, *, run_id: str) -> list[TaskSpec]:
    task_list = artifacts.read_artifact(conn, uri=artifact_uri(run_id, StepId.DECIDE, "task_list"))
    return parse_task_list(task_list.content) if task_list else []


def task_views(
    conn: sa.Connection,
    *,
    run_id: str,
    tasks: list[TaskSpec],
    max_attempts: int,
    skipped: frozenset[str] = frozenset(),
) -> list[TaskView]:
    """Views of `tasks` from their latest `sbx_runs` attempt and that attempt's artifacts;
    those in `skipped` (outside a subset approval) that never ran show as skipped."""
    views = with_latest_attempts(
        conn,
        run_id=run_id,
        views=[TaskView.pending(task) for task in tasks],
        max_attempts=max_attempts,
    )
    for view in views:
        if view.taskKey in skipped and view.status == "pending":
            view.status = "skipped"
    return views


def with_latest_attempts(
    conn: sa.Connection, *, run_id: str, views: list[TaskView], max_attempts: int
) -> list[TaskView]:
    """`views` of pending tasks, each updated from its latest attempt, if it has one.

    A retryable failure whose round still has attempts left shows as `retrying`.
    """
    keys = [view.taskKey for view in views]
    attempts = sandbox_runs.latest_attempts(
        conn, run_id=run_id, step_id=StepId.EXECUTE, task_keys=keys
    )
    stored = artifacts.list_artifacts(conn, run_id=run_id, step=StepId.EXECUTE, task_keys=keys)
    uris: dict[tuple[str, int], list[str]] = {}
    for meta in stored:
        attempt = attempt_of(meta.uri)
        if meta.task_key and attempt is not None:
            uris.setdefault((meta.task_key, attempt), []).append(meta.uri)
    for view in views:
        latest = attempts.get(view.taskKey)
        if latest is not None:
            code = ErrCode(latest.err_code)
            retrying = code.retryable and latest.round_attempt < max_attempts
            view.status = (
                "succeeded" if code is ErrCode.NONE else "retrying" if retrying else "failed"
            )
            view.errCode = code.value
            view.exitCode = latest.response.get("exitCode")
            view.attempt = latest.attempt
            view.wallMs = latest.metrics.get("wallMs")
            view.sandboxRef = latest.response.get("sandboxRef")
            view.artifacts = sorted(uris.get((view.taskKey, latest.attempt), []))
            view.diffUri = next((u for u in view.artifacts if u.endswith("/diff.patch")), None)
    return views


def attempt_of(uri: str) -> int | None:
    """The attempt number in a task artifact's URI (`.../attempt/<n>/...`), if any."""
    parts = uri.split("/attempt/")
    if len(parts) != 2:
        return None
    number = parts[1].split("/", 1)[0]
    return int(number) if number.isdigit() else None
