"""PostgreSQL restarted in the middle of a run: workers and the API reconnect, the run
completes, nothing is duplicated."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.embedded import EmbeddedPostgres
from sisu_kodo.db.engine import create_engine
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.processes import Stack, wait_for
from tests.fixtures.runs import execute_tasks, rows, run_to_gate, scalar, wait_status

pytestmark = pytest.mark.integration


def test_database_restart_mid_run(tmp_path: Path) -> None:
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="sisu-pgr-")))
    databases = TestDatabases(server.start())
    stack = Stack(databases.create(), tmp_path)
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        stack.start_worker()
        stack.start_api()
        with SisuClient(stack.base_url) as client:
            gate = run_to_gate(
                client,
                goal="slow restart",
                steps=10,
                concurrency=3,
                constraints={"mockLatencyMs": 600},
            )
            client.approve_plan(gate.runId, "ops-lead")
            wait_for(
                lambda: (
                    scalar(
                        engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=gate.runId
                    )
                    >= 2
                ),
                timeout=30,
                what="first tasks",
            )
            server.restart()
            # The API answers 200 again once its pool has reconnected to the new server.
            wait_for(
                lambda: httpx.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200,
                timeout=60,
                what="the API to reconnect",
            )
            done = wait_status(client, gate.runId, RunStatus.SUCCEEDED, timeout=120)
            health = httpx.get(f"{stack.base_url}/healthz").json()
        assert health["ok"] and any(w["alive"] for w in health["workers"])
        assert all(role.alive() for role in stack.roles)
        assert scalar(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE seen_count > 1") == 0
        assert (
            scalar(engine, "SELECT COUNT(*) FROM app.mock_receipts WHERE run_id = :r", r=gate.runId)
            == 10
        )
        assert (
            rows(engine, "SELECT task_key FROM app.sbx_runs GROUP BY 1 HAVING COUNT(*) > 1") == []
        )
        assert {t["status"] for t in execute_tasks(done)} == {"succeeded"}
    finally:
        stack.stop()
        engine.dispose()
        databases.drop_all()
        server.stop()
