"""The RunView of an executing run, from `app.run_tasks` and the ledger's attempts.

Each task's status comes from its latest attempt: the counts are SQL over every task,
the page is one page, and both agree with the per-task views the finished step records.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from sisu_kodo.api.views import build_run_view, task_page
from sisu_kodo.canonical import canonical_json
from sisu_kodo.config import Settings
from sisu_kodo.contracts.artifacts import artifact_uri
from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.contracts.runs import StepId, TaskView
from sisu_kodo.contracts.sandbox import ErrCode
from sisu_kodo.db import artifacts, executions, migrate, recipes, run_tasks, sandbox_runs
from sisu_kodo.db.engine import create_engine
from tests.fixtures.ledger import finish_steps, started_run
from tests.fixtures.postgres import TestDatabases

pytestmark = pytest.mark.postgres

SETTINGS = Settings(SISU_TASK_MAX_ATTEMPTS=3)
# (errCode, attempt) of each task's attempts; the last one is its latest.
ATTEMPTS: list[list[tuple[ErrCode, int]]] = [
    [(ErrCode.NONE, 1)],  # succeeded
    [(ErrCode.BOOT_FAIL, 1)],  # retrying: a retryable failure with attempts left
    [(ErrCode.CMD_NONZERO, 1)],  # failed: never retried
    [(ErrCode.TIMEOUT, 1), (ErrCode.TIMEOUT, 2), (ErrCode.TIMEOUT, 3)],  # failed: used up
    [],  # pending
]
STATUSES = ["succeeded", "retrying", "failed", "failed", "pending"]


def _task(number: int) -> TaskSpec:
    return TaskSpec(
        taskKey=f"{number:064x}", index=number + 1, name=f"task-{number}", command="true",
        timeoutMs=1000,
    )  # fmt: skip


def _executing_run(engine: sa.Engine) -> tuple[str, list[TaskSpec]]:
    run_id = started_run(engine)
    finish_steps(engine, run_id, StepId.COMPILE, StepId.DECIDE)
    tasks = [_task(number) for number in range(len(ATTEMPTS))]
    with engine.begin() as conn:
        run_tasks.record_tasks(conn, run_id=run_id, tasks=tasks)
        for task, attempts in zip(tasks, ATTEMPTS, strict=True):
            for code, attempt in attempts:
                sandbox_runs.record_attempt(
                    conn, run_id=run_id, step_id=StepId.EXECUTE, task_key=task.taskKey,
                    attempt=attempt, attempt_offset=0, provider="mock", request={},
                    response={"exitCode": 0 if code is ErrCode.NONE else 1},
                    err_code=code.value, metrics={"wallMs": attempt},
                )  # fmt: skip
    return run_id, tasks


def test_counts_by_status_cover_every_decided_task(ledger: sa.Engine) -> None:
    run_id, _ = _executing_run(ledger)
    with ledger.connect() as conn:
        counts = run_tasks.count_by_status(
            conn, run_id=run_id, step_id=StepId.EXECUTE, max_attempts=3
        )
    assert counts == {"succeeded": 1, "retrying": 1, "failed": 2, "pending": 1}


def test_the_live_view_counts_and_pages_from_the_task_rows(ledger: sa.Engine) -> None:
    run_id, tasks = _executing_run(ledger)
    with ledger.connect() as conn:
        view = build_run_view(conn, run_id=run_id, settings=SETTINGS)
        per_task = executions.task_views(conn, run_id=run_id, tasks=tasks, max_attempts=3)
    (execute,) = [step for step in view.steps if step.stepId == StepId.EXECUTE]
    assert execute.output is not None
    assert (execute.output["taskCount"], execute.output["completed"]) == (5, 3)
    listed = execute.output["raw"]["tasks"]
    assert [task["status"] for task in listed] == STATUSES
    assert listed == [task.model_dump() for task in per_task]


def test_a_page_is_the_slice_of_the_task_list(ledger: sa.Engine) -> None:
    run_id, tasks = _executing_run(ledger)
    with ledger.connect() as conn:
        page = task_page(conn, run_id=run_id, settings=SETTINGS, offset=3, limit=10)
    assert (page.total, page.offset, page.limit) == (5, 3, 10)
    assert [task["taskKey"] for task in page.tasks] == [task.taskKey for task in tasks[3:]]
    assert [task["status"] for task in page.tasks] == STATUSES[3:]


def test_recording_the_tasks_again_replaces_them(ledger: sa.Engine) -> None:
    run_id, tasks = _executing_run(ledger)
    with ledger.begin() as conn:
        run_tasks.record_tasks(conn, run_id=run_id, tasks=tasks[:2])
    with ledger.connect() as conn:
        assert run_tasks.count_tasks(conn, run_id=run_id) == 2
        views = run_tasks.list_pending_views(conn, run_id=run_id, offset=0, limit=10)
    assert [(view.taskKey, view.index, view.name) for view in views] == [
        (task.taskKey, task.index, task.name) for task in tasks[:2]
    ]


def test_the_migration_fills_the_rows_of_runs_decided_before_it(databases: TestDatabases) -> None:
    engine = create_engine(databases.create(), pool_size=1)
    try:
        with engine.connect() as conn:
            config = migrate._config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0005")  # the revision before run_tasks
            recipes.seed(conn)
            conn.commit()
        run_id = started_run(engine)
        tasks = [_task(number) for number in range(3)]
        with engine.begin() as conn:
            artifacts.put_artifact(
                conn, uri=artifact_uri(run_id, StepId.DECIDE, "task_list"), run_id=run_id,
                step_id=StepId.DECIDE, kind="task_list",
                content=canonical_json([task.model_dump() for task in tasks]).encode(),
            )  # fmt: skip
        migrate.upgrade(engine)
        with engine.connect() as conn:
            views = run_tasks.list_pending_views(conn, run_id=run_id, offset=0, limit=10)
        assert views == [TaskView.pending(task) for task in tasks]
    finally:
        engine.dispose()
