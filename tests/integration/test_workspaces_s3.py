"""Acceptance: with the S3 blob store (a real S3 API server, moto in server mode), a second
worker process whose data folder is empty executes the tasks of a run whose workspace the
first worker captured. Then `sisu diff` prints the run's diff, and `git apply` takes it.

Real processes: an API, worker-1 (plans and captures), worker-2 (executes, started only
after worker-1 stopped), live local sandboxes; the repository is a real git repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sisu_kodo.blobs.s3 import S3BlobStore
from sisu_kodo.client import SisuClient
from sisu_kodo.config import load_settings
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import RunStart, RunStatus, Workload
from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack
from tests.fixtures.repos import EXPECTED_PATCH, FIX, FIXED, make_project, record_workspace_plan
from tests.fixtures.runs import rows, wait_status
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration

GOAL = "fix calc across workers"
SEE = "test -f calc.py && head -1 README.md"


@pytest.fixture
def host() -> Iterator[Path]:
    """Folders the sandbox uid can reach (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="sisu-s3-"))
    root.chmod(0o711)
    (root / "work").mkdir(mode=0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_worker_with_an_empty_data_folder_runs_tasks_on_the_captured_workspace(
    make_stack: Callable[..., Stack], s3: S3Server, host: Path
) -> None:
    bucket = s3.new_bucket()
    stack = make_stack(
        SB_MODE="live",
        SBX_PROVIDER="local",
        SBX_LOCAL_WORK_ROOT=str(host / "work"),
        OC_MODE="replay",
        OC_FIXTURES_DIR=str(host / "fixtures"),
        **s3.env(bucket),
    )
    repo = make_project(host / "repo")
    inputs: dict[str, object] = {"workspace": {"git": {"url": str(repo), "ref": "main"}}}
    record_workspace_plan(
        host / "fixtures", goal=GOAL, inputs=inputs, settings=load_settings(), commands=[FIX, SEE]
    )
    stack.start_api()
    first = stack.start_worker("worker-1")
    with SisuClient(stack.base_url) as client:
        intent_id = client.create_intent(IntentCreate(goal=GOAL, inputs=inputs))
        run_id = client.start_run(
            intent_id,
            RunStart(queuePartitionKey="tenant-s3", workload=Workload(concurrency=2, steps=2)),
        ).runId
        gated = wait_status(client, run_id, RunStatus.WAITING_INPUT, timeout=90)
        assert gated.workspace is not None
        sha = gated.workspace.snapshotSha256
        assert S3BlobStore(s3.location(bucket)).exists(sha), "worker-1 captured it into S3"
        first.stop()

        empty = host / "empty-data"
        empty.mkdir()
        stack.start_worker("worker-2", SISU_DATA_DIR=str(empty))
        client.approve_plan(run_id, "ops-lead")
        done = wait_status(
            client, run_id, RunStatus.SUCCEEDED, RunStatus.RETRIES_EXCEEDED, timeout=120
        )
        assert done.status is RunStatus.SUCCEEDED, [t.errCode for t in done.execute_tasks()]
        assert client.run_diff(run_id).patch == EXPECTED_PATCH

    engine = create_engine(stack.database_url, pool_size=1)
    try:
        executors = rows(
            engine, "SELECT DISTINCT executor_id FROM app.sbx_attempts WHERE run_id = :r", r=run_id
        )
    finally:
        engine.dispose()
    assert executors == [("test-worker-2",)]
    assert not (empty / "blobs").exists(), "worker-2 read the snapshot from S3, not its disk"

    printed = subprocess.run(
        [sys.executable, "-m", "sisu_kodo.cli.main", "diff", run_id, "--base", stack.base_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == EXPECTED_PATCH
    clean = host / "clean"
    subprocess.run(["git", "clone", "-q", str(repo), str(clean)], check=True)
    subprocess.run(["git", "apply"], input=printed.stdout, text=True, cwd=clean, check=True)
    assert (clean / "calc.py").read_text() == FIXED
