"""The workspace run on the E2B fake (the real SDK against a loopback fake of E2B's API):
the snapshot is uploaded and unpacked before each command, and the work folder comes
back for the diff. One in-process worker (real DBOS, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sisu_kodo.api import workspaces
from sisu_kodo.blobs import BlobStore, FilesystemBlobStore
from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.db import artifacts
from sisu_kodo.sbx.e2b import E2BSandboxProvider
from tests.fixtures.in_process import InProcessWorker, workspace_worker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.repos import EXPECTED_PATCH, FIX, repository_run
from tests.sbx.conftest import e2b_provider
from tests.sbx.e2b_fake import FakeE2B

GOAL = "fix calc on e2b"
SEE = "test -f calc.py && head -1 README.md"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2b-ws")


@pytest.fixture(scope="module")
def worker(
    databases: TestDatabases, place: Path, e2b_fake: tuple[FakeE2B, str]
) -> Iterator[InProcessWorker]:
    def e2b(blobs: BlobStore) -> E2BSandboxProvider:
        return e2b_provider(e2b_fake[1], snapshots=blobs.get)

    started = workspace_worker(databases.create(), place, e2b)
    yield started
    started.stop()


def test_the_run_uploads_the_snapshot_to_each_sandbox(
    worker: InProcessWorker, place: Path, e2b_fake: tuple[FakeE2B, str]
) -> None:
    _, run_id = repository_run(
        worker, place, goal=GOAL, partition="tenant-e2b", commands=[FIX, SEE]
    )
    worker.approve(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED, RunStatus.RETRIES_EXCEEDED, timeout=120)

    tasks = worker.view(run_id).execute_tasks()
    assert [(t.status, t.errCode) for t in tasks] == [("succeeded", "NONE")] * 2
    assert all(t.sandboxRef in e2b_fake[0].deleted for t in tasks), "each in its own sandbox"
    blobs = FilesystemBlobStore(place / "blobs")
    with worker.engine.connect() as conn:
        outputs = [
            artifacts.read_artifact(conn, uri=(t.diffUri or "").replace("diff.patch", "stdout"))
            for t in tasks
        ]
        diff = workspaces.run_diff(conn, run_id=run_id, blobs=blobs)
    assert outputs[0] is not None and b"1 passed" in outputs[0].content
    assert outputs[1] is not None and outputs[1].content == b"# calc\n"
    assert diff.patch == EXPECTED_PATCH, "the work folder came back; .sisu is not in the diff"
