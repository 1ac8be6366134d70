"""Acceptance: a run on a real local git repository, on the live local provider.

The tasks see the repository's files (extracted into each attempt's own folder), one
fixes the code and runs `python3 -m pytest` there; the run's diff holds exactly that
change and `git apply` applies it to a clean clone, whose tests then pass.
One in-process worker (real DBOS, real PostgreSQL, real bubblewrap sandboxes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sisu_kodo.api import workspaces
from sisu_kodo.blobs import BlobStore, FilesystemBlobStore
from sisu_kodo.contracts.runs import RunStatus, TaskView
from sisu_kodo.db import artifacts
from sisu_kodo.sbx.local import LocalSandboxProvider
from tests.fixtures.in_process import InProcessWorker, workspace_worker
from tests.fixtures.postgres import TestDatabases
from tests.fixtures.repos import EXPECTED_PATCH, FIX, FIXED, git, repository_run

GOAL = "fix calc so its tests pass"
SEE = "test -f calc.py && test -f tests/test_calc.py && head -1 README.md"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="sisu-ws-"))
    root.chmod(0o711)  # the sandbox uid traverses into its attempt folders
    (root / "work").mkdir(mode=0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def worker(databases: TestDatabases, place: Path) -> Iterator[InProcessWorker]:
    def local(blobs: BlobStore) -> LocalSandboxProvider:
        return LocalSandboxProvider(work_root=place / "work", snapshots=blobs.get)

    started = workspace_worker(databases.create(), place, local)
    yield started
    started.stop()


def test_tasks_work_on_the_repository_and_the_diff_applies(
    worker: InProcessWorker, place: Path
) -> None:
    repo, run_id = repository_run(
        worker, place, goal=GOAL, partition="tenant-ws", commands=[FIX, SEE]
    )
    view = worker.view(run_id)
    assert view.workspace is not None
    assert view.workspace.commit == git(repo, "rev-parse", "HEAD").strip()
    assert view.workspace.source == "git" and view.workspace.ref == "main"
    compile_output = view.steps[0].output or {}
    assert compile_output.get("planSource") == "fixture", "the planner saw the workspace summary"

    worker.approve(run_id)
    worker.wait_status(run_id, RunStatus.SUCCEEDED, RunStatus.RETRIES_EXCEEDED, timeout=120)
    view = worker.view(run_id)
    tasks = view.execute_tasks()
    assert [task.status for task in tasks] == ["succeeded", "succeeded"], outputs(worker, tasks)
    diff_uris = [task.diffUri or "" for task in tasks]
    assert all(diff_uris), "each task links its diff artifact"
    with worker.engine.connect() as conn:
        stdout = artifacts.read_artifact(conn, uri=diff_uris[0].replace("diff.patch", "stdout"))
        seen = artifacts.read_artifact(conn, uri=diff_uris[1].replace("diff.patch", "stdout"))
        diff = workspaces.run_diff(conn, run_id=run_id, blobs=worker_blobs(place))
    assert stdout is not None and b"1 passed" in stdout.content, "pytest ran on the fixed code"
    assert seen is not None and seen.content == b"# calc\n", "the second task saw the files"
    assert diff.patch == EXPECTED_PATCH, "exactly the change, no caches"
    assert [t.name for t in diff.tasks] == ["task-1"] and diff.conflicts == []

    clean = place / "clean"
    subprocess.run(["git", "clone", "-q", str(repo), str(clean)], check=True)
    (clean / "change.patch").write_text(diff.patch)
    subprocess.run(["git", "apply", "change.patch"], cwd=clean, check=True)
    assert (clean / "calc.py").read_text() == FIXED
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=clean,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout
    assert (repo / "calc.py").read_text() != FIXED, "the source repository is untouched"


def worker_blobs(place: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(place / "blobs")


def outputs(worker: InProcessWorker, tasks: list[TaskView]) -> list[bytes]:
    """What each task printed, to say why one failed."""
    with worker.engine.connect() as conn:
        found = [artifacts.read_artifact(conn, uri=uri) for t in tasks for uri in t.artifacts]
    return [artifact.content for artifact in found if artifact and artifact.meta.kind != "file"]
