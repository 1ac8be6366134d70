"""Fan-out through the workflow on live providers: the local bubblewrap sandbox and E2B
(the real SDK against the loopback fake), with the manual's section 3 oracle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack
from tests.fixtures.runs import execute_tasks, rows, run_to_end
from tests.sbx.e2b_fake import GOOD_KEY, FakeE2B, serve_fake

pytestmark = pytest.mark.integration

ORACLE = """
SELECT
  task_key,
  err_code,
  (metrics->>'wallMs')::int as latency,
  response->>'sandboxRef' as sbx
FROM app.sbx_runs
WHERE run_id = :r
ORDER BY created_at;
"""


def _assert_real_run(stack: Stack, client: SisuClient, run_id: str, prefix: str) -> None:
    run = client.get_run(run_id)
    assert run.status is RunStatus.SUCCEEDED, run.error
    tasks = execute_tasks(run)
    for task in tasks:
        assert task["exitCode"] == 0 and task["errCode"] == "NONE"
        assert task["sandboxRef"].startswith(prefix) and task["wallMs"] is not None
        stdout_uri = next(uri for uri in task["artifacts"] if uri.endswith("/stdout"))
        assert f"[{task['index']}/{len(tasks)}]" in client.artifact(stdout_uri).decode()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        oracle = rows(engine, ORACLE, r=run_id)
    finally:
        engine.dispose()
    assert len(oracle) == len(tasks)
    assert all(row.sbx.startswith(prefix) and row.latency >= 0 for row in oracle)


def test_local_bubblewrap_fan_out(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(SB_MODE="live", SBX_PROVIDER="local")
    stack.start_worker()
    stack.start_api()
    with SisuClient(stack.base_url) as client:
        run = run_to_end(client, goal="local sandboxes", steps=50, concurrency=50)
        _assert_real_run(stack, client, run.runId, "local-")
        index_uri = next(u for u in execute_tasks(run)[0]["artifacts"] if u.endswith("/index"))
        index = json.loads(client.artifact(index_uri))
        assert index["provider"] == "local" and index["isolation"] == "namespaces"


@pytest.fixture(scope="module")
def e2b_fake() -> Iterator[tuple[FakeE2B, str]]:
    with serve_fake() as served:
        yield served


def test_e2b_fan_out_through_the_real_sdk(
    make_stack: Callable[..., Stack], e2b_fake: tuple[FakeE2B, str]
) -> None:
    fake, url = e2b_fake
    stack = make_stack(
        SB_MODE="live",
        SBX_PROVIDER="e2b",
        E2B_API_KEY=GOOD_KEY,
        E2B_API_URL=url,
        E2B_SANDBOX_URL=url,
        E2B_HTTP_VERSION="1.1",
    )
    stack.start_worker()
    stack.start_api()
    with SisuClient(stack.base_url) as client:
        run = run_to_end(client, goal="e2b sandboxes", steps=4, concurrency=2)
        _assert_real_run(stack, client, run.runId, "")
    created = [
        body["metadata"]
        for body in fake.created.values()
        if (body.get("metadata") or {}).get("runId") == run.runId
    ]
    assert len(created) == 4 and {meta["taskKey"] for meta in created} == {
        t["taskKey"] for t in execute_tasks(run)
    }


def test_demo_runs_real_commands_on_local(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(SB_MODE="live", SBX_PROVIDER="local")
    stack.start_worker()
    stack.start_api()
    done = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "demo", "--steps", "3"],
        env={**os.environ, **stack.env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outcome: succeeded" in done.stdout and "local-" in done.stdout
