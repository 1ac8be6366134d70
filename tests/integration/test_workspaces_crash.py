"""The capture at run start happens once, even when the worker is SIGKILLed after it
recorded the snapshot and before DBOS checkpointed the step, and the repository's branch
moved on meanwhile: the recovered capture clones again, finds the first record, and the
run keeps the snapshot (and commit) it captured first."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStart, RunStatus, Workload
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.repos import git
from tests.fixtures.runs import rows, scalar, wait_status

pytestmark = pytest.mark.integration


def test_a_kill_after_the_capture_keeps_the_first_snapshot(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "data.txt").write_text("first\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    first_commit = git(repo, "rev-parse", "HEAD").strip()

    stack = make_stack()
    worker = stack.start_worker(
        "crash-worker", SISU_CHAOS_PAUSE=json.dumps({"capture_recorded": 60})
    )
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        with SisuClient(stack.base_url) as client:
            inputs = {"workspace": {"git": {"url": str(repo), "ref": "main"}}}
            intent_id = client.create_intent(IntentCreate(goal="read data", inputs=inputs))
            run_id = client.start_run(
                intent_id,
                RunStart(
                    queuePartitionKey="tenant-crash", workload=Workload(concurrency=2, steps=2)
                ),
            ).runId
            recorded = wait_for(
                lambda: scalar(
                    engine,
                    "SELECT snapshot_sha256 FROM app.run_workspaces WHERE run_id = :r",
                    r=run_id,
                ),
                timeout=60,
                what="the capture to be recorded",
            )
            (repo / "data.txt").write_text("second\n")
            git(repo, "commit", "-qam", "second")  # the branch moves while the worker is down
            worker.kill()
            stack.start_worker("crash-worker")  # same executor id: DBOS recovers the run

            gated = wait_status(client, run_id, RunStatus.WAITING_INPUT, timeout=90)
            assert gated.workspace is not None
            assert (gated.workspace.snapshotSha256, gated.workspace.commit) == (
                recorded,
                first_commit,
            )
            assert [e.type for e in client.events(run_id)].count("run.started") == 1
            client.approve_plan(run_id, "ops-lead")
            done = wait_status(client, run_id, RunStatus.SUCCEEDED, timeout=90)
            assert done.workspace == gated.workspace
        captured = rows(
            engine, "SELECT snapshot_sha256 FROM app.run_workspaces WHERE run_id = :r", r=run_id
        )
        assert captured == [(recorded,)]
        approved = rows(
            engine, "SELECT workspace_sha256 FROM app.plan_approvals WHERE run_id = :r", r=run_id
        )
        assert approved == [(recorded,)]
    finally:
        engine.dispose()
