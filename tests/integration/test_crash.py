"""Workers killed with SIGKILL at each phase of a run: the run finishes, nothing twice.

Kill windows come from SISU_CHAOS_PAUSE (the worker holds still at a named point);
the restarted worker has no pause and the same executor id, so DBOS recovers its work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus, RunView
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import execute_tasks, rows, run_to_gate, scalar, start_run, wait_status

pytestmark = pytest.mark.integration


@contextmanager
def crash_stack(
    make_stack: Callable[..., Stack], pause: dict[str, float] | None = None
) -> Iterator[tuple[Stack, SisuClient, sa.Engine]]:
    stack = make_stack()
    env = {"SISU_CHAOS_PAUSE": json.dumps(pause)} if pause else {}
    stack.start_worker("crash-worker", **env)
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        with SisuClient(stack.base_url) as client:
            yield stack, client, engine
    finally:
        engine.dispose()


def restart_worker(stack: Stack) -> None:
    worker = next(role for role in stack.roles if role.role == "worker" and role.alive())
    worker.kill()
    stack.start_worker("crash-worker")  # same executor id, no chaos pause


def count(engine: sa.Engine, sql: str, **params: object) -> int:
    return int(scalar(engine, sql, **params))


def assert_exactly_once(engine: sa.Engine, run: RunView, tasks: int) -> None:
    assert run.status is RunStatus.SUCCEEDED
    assert count(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1;") == 0
    assert (
        rows(engine, "SELECT task_key, COUNT(*) FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1;")
        == []
    )
    assert (
        count(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=run.runId)
        == tasks
    )
    assert {s.stepId: s.attempt for s in run.steps} == {
        "CompileST": 1,
        "DecideST": 1,
        "ExecuteST": 1,
    }
    per_step = rows(
        engine,
        "SELECT step_id, COUNT(*) FROM app.run_steps WHERE run_id = :r GROUP BY 1",
        r=run.runId,
    )
    assert all(n == 1 for _, n in per_step)
    executed = execute_tasks(run)
    assert len(executed) == tasks and {t["status"] for t in executed} == {"succeeded"}


def test_kill_during_compile(make_stack: Callable[..., Stack]) -> None:
    with crash_stack(make_stack, {"compile": 30}) as (stack, client, engine):
        run_id = start_run(client, steps=3)
        wait_for(
            lambda: count(
                engine,
                "SELECT COUNT(*) FROM app.run_steps WHERE run_id = :r AND step_id = 'CompileST'",
                r=run_id,
            ),
            timeout=30,
            what="CompileST to start",
        )
        restart_worker(stack)
        gate = wait_status(client, run_id, RunStatus.WAITING_INPUT, timeout=60)
        assert (
            count(
                engine,
                "SELECT COUNT(*) FROM app.artifacts WHERE run_id = :r AND kind = 'plan_card'",
                r=run_id,
            )
            == 1
        )
        assert [e.type for e in client.events(run_id)].count("run.started") == 1
        client.approve_plan(run_id, "ops-lead")
        assert_exactly_once(engine, wait_status(client, gate.runId, RunStatus.SUCCEEDED), 3)


def test_kill_while_waiting_for_approval(make_stack: Callable[..., Stack]) -> None:
    with crash_stack(make_stack) as (stack, client, engine):
        gate = run_to_gate(client, steps=3)
        restart_worker(stack)
        client.approve_plan(gate.runId, "ops-lead")
        assert_exactly_once(engine, wait_status(client, gate.runId, RunStatus.SUCCEEDED), 3)


def test_kill_mid_fan_out(make_stack: Callable[..., Stack]) -> None:
    with crash_stack(make_stack) as (stack, client, engine):
        gate = run_to_gate(
            client,
            goal="slow crash proof",
            steps=8,
            concurrency=4,
            constraints={"mockLatencyMs": 700},
        )
        client.approve_plan(gate.runId, "ops-lead")
        wait_for(
            lambda: (
                count(engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=gate.runId)
                >= 2
            ),
            timeout=30,
            what="the first tasks to finish",
        )
        restart_worker(stack)
        finished_before = count(
            engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=gate.runId
        )
        assert finished_before < 8, "the kill must land mid fan-out"
        assert_exactly_once(
            engine, wait_status(client, gate.runId, RunStatus.SUCCEEDED, timeout=90), 8
        )


def test_sigterm_mid_fan_out_exits_at_once_and_recovery_finishes(
    make_stack: Callable[..., Stack],
) -> None:
    """A stopped worker does not wait for its tasks: they are durable, and waiting for a
    long command ran into the supervisor's SIGKILL (Role.stop allows 15 s)."""
    with crash_stack(make_stack) as (stack, client, engine):
        gate = run_to_gate(client, steps=2, concurrency=2, constraints={"mockLatencyMs": 20_000})
        client.approve_plan(gate.runId, "ops-lead")
        wait_for(
            lambda: (
                count(
                    engine, "SELECT COUNT(*) FROM app.sbx_attempts WHERE run_id = :r", r=gate.runId
                )
                == 2
            ),
            timeout=30,
            what="both tasks to start",
        )
        worker = next(role for role in stack.roles if role.role == "worker")
        worker.stop()
        assert worker.process is not None and worker.process.returncode == 0, worker.log()[-2000:]
        assert "their workflows resume on recovery" in worker.log()
        stack.start_worker("crash-worker")
        done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, timeout=120)
        assert_exactly_once(engine, done, 2)


def test_kill_during_aggregation(make_stack: Callable[..., Stack]) -> None:
    with crash_stack(make_stack, {"finish_execute": 30}) as (stack, client, engine):
        gate = run_to_gate(client, steps=4, concurrency=4)
        client.approve_plan(gate.runId, "ops-lead")
        wait_for(
            lambda: (
                count(
                    engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=gate.runId
                )
                == 4
            ),
            timeout=30,
            what="every task to finish",
        )
        assert client.get_run(gate.runId).status is RunStatus.RUNNING
        restart_worker(stack)
        done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, timeout=60)
        assert_exactly_once(engine, done, 4)
        assert [e.type for e in client.events(gate.runId)].count("run.succeeded") == 1
