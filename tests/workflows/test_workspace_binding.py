"""The approval binds the workspace snapshot: in one process (real DBOS, real PostgreSQL,
the mock sandbox), an uploaded workspace is captured at run start, the gate refuses to
open on a snapshot that no longer matches, and ExecuteST refuses a snapshot that differs
from the approved one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.api import service, workspaces
from sisu_kodo.blobs import FilesystemBlobStore
from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import ApprovePlan, RunStart, RunStatus, Workload
from sisu_kodo.db import runs
from sisu_kodo.db import workspaces as workspace_rows
from sisu_kodo.workspaces.errors import WorkspaceMismatchError
from tests.fixtures.archives import tar_of
from tests.fixtures.in_process import InProcessWorker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.runs import rows, scalar

pytestmark = pytest.mark.postgres

FILES = {"README.md": b"# data\n", "data/input.csv": b"a,b\n1,2\n"}


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path_factory.mktemp("blobs"))


@pytest.fixture(scope="module")
def worker(databases: TestDatabases, blobs: FilesystemBlobStore) -> Iterator[InProcessWorker]:
    started = InProcessWorker.start(
        databases.create(), blobs=blobs, mock_latency_ms=5, queue_poll_seconds=0.05
    )
    yield started
    started.stop()


def run_on_upload(worker: InProcessWorker, blobs: FilesystemBlobStore, tenant: str) -> str:
    with worker.gateway.unit_of_work(worker.engine) as unit:
        upload = workspaces.create_workspace(
            unit.conn, tar_of(FILES), settings=worker.settings, blobs=blobs
        )
        intent_id = service.create_intent(
            unit.conn,
            IntentCreate(goal="work on data", inputs={"workspace": {"upload": upload.workspaceId}}),
        )
        started = service.start_run(
            unit,
            intent_id=intent_id,
            body=RunStart(queuePartitionKey=tenant, workload=Workload(concurrency=2, steps=2)),
            app_version=worker.settings.topology.app_version,
        )
    worker.wait_status(started.runId, RunStatus.WAITING_INPUT)
    return started.runId


def snapshot_of(worker: InProcessWorker, run_id: str) -> str:
    view = worker.view(run_id)
    assert view.workspace is not None and view.workspace.source == "upload"
    assert (view.workspace.fileCount, view.workspace.size) == (2, 15)
    return view.workspace.snapshotSha256


def test_the_gate_refuses_a_snapshot_that_no_longer_matches(
    worker: InProcessWorker, blobs: FilesystemBlobStore
) -> None:
    run_id = run_on_upload(worker, blobs, "tenant-bind")
    sha = snapshot_of(worker, run_id)
    blob = blobs.path(sha)
    original = blob.read_bytes()
    blob.write_bytes(original + b"tampered")
    with pytest.raises(WorkspaceMismatchError):
        worker.approve(run_id)
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.plan_approvals WHERE run_id = :r", r=run_id)
        == 0
    )
    assert worker.status(run_id) is RunStatus.WAITING_INPUT

    blob.write_bytes(original)
    worker.approve(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED)
    approved = rows(
        worker.engine, "SELECT workspace_sha256 FROM app.plan_approvals WHERE run_id = :r", r=run_id
    )
    assert approved == [(sha,)], "the approval record holds the workspace sha256"
    stdout = rows(
        worker.engine,
        "SELECT convert_from(content, 'UTF8') FROM app.artifacts"
        " WHERE run_id = :r AND kind = 'stdout'",
        r=run_id,
    )
    assert all(f"would extract workspace {sha}" in text for (text,) in stdout) and stdout


def test_execution_refuses_a_snapshot_that_differs_from_the_approved_one(
    worker: InProcessWorker, blobs: FilesystemBlobStore
) -> None:
    run_id = run_on_upload(worker, blobs, "tenant-swap")
    other = blobs.put(b"another snapshot")
    with worker.gateway.unit_of_work(worker.engine) as unit:
        service.approve_plan(
            unit, run_id=run_id, body=ApprovePlan(approvedBy="tester"), blobs=blobs
        )
        # After the approval, before ExecuteST: the run's snapshot is swapped.
        unit.conn.execute(
            sa.text("UPDATE app.run_workspaces SET snapshot_sha256 = :s WHERE run_id = :r"),
            {"s": other, "r": run_id},
        )
    worker.wait_status(run_id, RunStatus.FAILED)
    with worker.engine.connect() as conn:
        run = runs.require_run(conn, run_id=run_id)
    assert run.error is not None and "refuses a snapshot that differs" in run.error
    assert (
        scalar(worker.engine, "SELECT COUNT(*) FROM app.sbx_runs WHERE run_id = :r", r=run_id) == 0
    )


def test_a_repeated_capture_keeps_the_first(
    worker: InProcessWorker, blobs: FilesystemBlobStore
) -> None:
    """The capture is recorded once: a second record of another snapshot changes nothing."""
    run_id = run_on_upload(worker, blobs, "tenant-once")
    sha = snapshot_of(worker, run_id)
    with worker.engine.begin() as conn:
        again = workspace_rows.record_run_workspace(
            conn,
            run_id=run_id,
            source="upload",
            url=None,
            ref=None,
            commit=None,
            workspace_id=None,
            snapshot_sha256="f" * 64,
            file_count=0,
            size=0,
            summary={},
            manifest={},
        )
    assert again.snapshot_sha256 == sha
