"""Failures injected by the mock from the goal: fail closed, retry infrastructure, report."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStatus
from tests.fixtures.runs import execute_tasks, rows, run_to_end

pytestmark = pytest.mark.integration


def test_fail_me_fails_closed_with_repair(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_end(client, goal="please fail me", steps=3)
    assert run.status is RunStatus.RETRIES_EXCEEDED
    assert run.nextAction is NextAction.REPAIR
    tasks = execute_tasks(run)
    failed = [t for t in tasks if t["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["errCode"] == "CMD_NONZERO"
    assert failed[0]["exitCode"] == 1 and failed[0]["attempt"] == 1
    assert failed[0]["name"] in (run.error or "") and "CMD_NONZERO" in (run.error or "")
    attempts = rows(
        db, "SELECT attempt FROM app.sbx_runs WHERE task_key = :k", k=failed[0]["taskKey"]
    )
    assert [a.attempt for a in attempts] == [1]  # a logic error is not retried
    stderr_uri = next(uri for uri in failed[0]["artifacts"] if uri.endswith("/stderr"))
    assert b"exited with 1" in client.artifact(stderr_uri)


def test_flaky_boot_is_retried_then_succeeds(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_end(client, goal="flaky boot please", steps=2)
    assert run.status is RunStatus.SUCCEEDED
    for task in execute_tasks(run):
        assert task["attempt"] == 3
        codes = rows(
            db,
            "SELECT attempt, err_code FROM app.sbx_runs WHERE task_key = :k ORDER BY attempt",
            k=task["taskKey"],
        )
        assert [(c.attempt, c.err_code) for c in codes] == [
            (1, "BOOT_FAIL"),
            (2, "BOOT_FAIL"),
            (3, "NONE"),
        ]


def test_boot_fail_exhausts_retries(client: SisuClient, db: sa.Engine) -> None:
    run = run_to_end(client, goal="boot fail forever", steps=2)
    assert run.status is RunStatus.RETRIES_EXCEEDED
    assert run.nextAction is NextAction.REPAIR
    assert "BOOT_FAIL" in (run.error or "") and "at attempt 3" in (run.error or "")
    for task in execute_tasks(run):
        assert task["status"] == "failed" and task["attempt"] == 3
    receipts = rows(db, "SELECT * FROM app.mock_receipts WHERE run_id = :r", r=run.runId)
    assert receipts == []  # nothing succeeded, so no side effect was committed


def test_time_me_out_is_a_retried_timeout(client: SisuClient) -> None:
    run = run_to_end(client, goal="time me out", steps=2)
    assert run.status is RunStatus.RETRIES_EXCEEDED
    failed = [t for t in execute_tasks(run) if t["status"] == "failed"]
    assert [t["errCode"] for t in failed] == ["TIMEOUT"]
    assert failed[0]["attempt"] == 3


def test_large_output_is_capped_and_marked_truncated(client: SisuClient) -> None:
    run = run_to_end(client, steps=1, constraints={"mockOutputBytes": 10_000})
    assert run.status is RunStatus.SUCCEEDED
    (task,) = execute_tasks(run)
    index_uri = next(uri for uri in task["artifacts"] if uri.endswith("/index"))
    index = json.loads(client.artifact(index_uri))
    stdout = next(item for item in index["items"] if item["kind"] == "stdout")
    assert stdout["truncated"] is True and stdout["size"] == 4096
    assert len(client.artifact(stdout["uri"])) == 4096
    assert index["isolation"] == "mock" and index["metrics"]["wallMs"] >= 0
