"""App-version parity (manual section 4, "Stuck queued"): a mismatch is reported, not silent."""

from __future__ import annotations

import httpx
import pytest

from sisu_kodo.cli.stack import free_port
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import NextAction, RunStatus
from tests.fixtures.processes import Stack
from tests.fixtures.runs import start_run, wait_status

pytestmark = pytest.mark.integration


def test_run_enqueued_for_a_version_no_worker_runs_is_flagged(stack: Stack) -> None:
    port = free_port()
    stack.start_api("api-v2", PORT=str(port), DBOS__APPVERSION="v2")
    base = f"http://127.0.0.1:{port}"
    health = httpx.get(f"{base}/healthz").json()
    assert health["appVersion"] == "v2"
    assert any("'v2'" in w and "v1" in w for w in health["warnings"])
    with SisuClient(base) as v2:
        run_id = start_run(v2, partition="tenant-version", steps=1)
        run = v2.get_run(run_id)
        assert run.status is RunStatus.QUEUED
        assert run.appVersion == "v2"
        assert run.nextAction is NextAction.START_WORKER
        assert run.hint and "'v2'" in run.hint and "v1" in run.hint
        # A v2 worker drains it.
        stack.start_worker("worker-v2", DBOS__APPVERSION="v2", ADMIN_PORT=str(free_port()))
        reached = wait_status(v2, run_id, RunStatus.WAITING_INPUT)
        assert reached.hint is None
