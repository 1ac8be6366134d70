"""Workspace operations behind the routes: uploads, `inputs.workspace` checks, diffs.

Like the run service, each function checks everything before it writes: a refused
archive, an unreadable repository or an unknown ref leaves the database and the blob
store untouched.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from sisu_kodo.auth import ANONYMOUS, Principal
from sisu_kodo.blobs import BlobIntegrityError, BlobMissingError, BlobStore
from sisu_kodo.config import Settings
from sisu_kodo.contracts.runs import DecideOutput, StepId
from sisu_kodo.contracts.workspaces import (
    WORKSPACE_INPUT,
    RunDiff,
    TaskDiff,
    WorkspaceDiff,
    WorkspaceInput,
    WorkspaceView,
    diff_index_uri,
    diff_patch_uri,
)
from sisu_kodo.db import artifacts, run_tasks, runs, sandbox_runs, workspaces
from sisu_kodo.errors import InvalidRequestError, NotFoundError
from sisu_kodo.workspaces import caps_of, git, snapshot_upload
from sisu_kodo.workspaces.diffs import conflicts
from sisu_kodo.workspaces.errors import WorkspaceMismatchError


def new_workspace_id() -> str:
    return f"ws_{uuid.uuid4().hex}"


def create_workspace(
    conn: sa.Connection,
    raw: bytes,
    *,
    settings: Settings,
    blobs: BlobStore,
    principal: Principal = ANONYMOUS,
) -> WorkspaceView:
    """Check the archive, store its snapshot (blob first: content-addressed, so a crash
    before the row leaves only an unreferenced blob), then record the workspace."""
    if not raw:
        raise InvalidRequestError(
            "the upload is empty; send a tar, tar.gz or zip archive",
            [{"path": "body", "message": "empty"}],
        )
    snapshot = snapshot_upload(raw, caps_of(settings))
    blobs.put(snapshot.tar)
    workspace_id = new_workspace_id()
    workspaces.create_workspace(
        conn,
        workspace_id=workspace_id,
        tenant=principal.sole_tenant,
        created_by_key_id=principal.key_id,
        snapshot_sha256=snapshot.sha256,
        file_count=snapshot.file_count,
        size=snapshot.size,
        manifest=snapshot.manifest(),
    )
    row = workspaces.read_workspace(conn, workspace_id=workspace_id)
    assert row is not None
    return view_of(row)


def view_of(row: workspaces.WorkspaceRow) -> WorkspaceView:
    return WorkspaceView(
        workspaceId=row.id,
        snapshotSha256=row.snapshot_sha256,
        fileCount=row.file_count,
        size=row.size,
        createdAt=row.created_at.isoformat(),
    )


def require_visible_workspace(
    conn: sa.Connection, principal: Principal, workspace_id: str
) -> workspaces.WorkspaceRow:
    """The upload, if `principal` may see it; else the 404 of a missing one."""
    row = workspaces.read_workspace(conn, workspace_id=workspace_id)
    if row is None or not principal.sees_own(row.tenant, row.created_by_key_id):
        raise NotFoundError(f"workspace {workspace_id} not found", {"workspaceId": workspace_id})
    return row


def check_workspace_input(
    conn: sa.Connection, inputs: dict[str, Any], principal: Principal = ANONYMOUS
) -> WorkspaceInput | None:
    """`inputs.workspace`, checked: its shape, the repository and ref, or the upload."""
    given = inputs.get(WORKSPACE_INPUT)
    if given is None:
        return None
    try:
        workspace = WorkspaceInput.model_validate(given)
    except ValidationError as exc:
        problems = [
            {
                "path": ".".join(["inputs", WORKSPACE_INPUT, *map(str, e["loc"])]),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        raise InvalidRequestError("invalid inputs.workspace", problems) from exc
    if workspace.git is not None:
        git.check_ref(workspace.git.url, workspace.git.ref)
    elif workspace.upload is not None:
        require_visible_workspace(conn, principal, workspace.upload)
    return workspace


def gate_workspace(conn: sa.Connection, *, run_id: str, blobs: BlobStore | None) -> str | None:
    """The workspace sha256 an approval of the run binds: the one DecideST showed, which
    must still be the run's and (with `blobs`) still be what its stored snapshot hashes to.

    Raises:
        WorkspaceMismatchError: (409) the snapshot changed since the gate opened.
    """
    output = runs.read_step_output(conn, run_id=run_id, step_id=StepId.DECIDE)
    shown = DecideOutput.model_validate(output).workspaceSha256 if output else None
    captured = workspaces.read_run_workspace(conn, run_id=run_id)
    current = captured.snapshot_sha256 if captured else None
    if shown != current:
        raise WorkspaceMismatchError(
            f"run {run_id}: the gate showed workspace {shown}, the run now has {current}",
            {"runId": run_id, "decided": shown, "current": current},
        )
    if current is not None and blobs is not None:
        try:
            blobs.get(current)
        except (BlobMissingError, BlobIntegrityError) as exc:
            raise WorkspaceMismatchError(
                f"run {run_id}: workspace snapshot {current} no longer matches: {exc.message}",
                {"runId": run_id, "decided": shown, "current": current},
            ) from exc
    return current


def task_diff(conn: sa.Connection, *, run_id: str, task_key: str, blobs: BlobStore) -> TaskDiff:
    """The diff of a task's latest attempt (empty while it has none or changed nothing)."""
    name = run_tasks.read_task_name(conn, run_id=run_id, task_key=task_key)
    if name is None:
        raise NotFoundError(
            f"run {run_id} has no task {task_key}", {"runId": run_id, "taskKey": task_key}
        )
    latest = sandbox_runs.latest_attempts(
        conn, run_id=run_id, step_id=StepId.EXECUTE, task_keys=[task_key]
    ).get(task_key)
    base = TaskDiff(taskKey=task_key, name=name, attempt=latest.attempt if latest else 0)
    if latest is None:
        return base
    uri = diff_patch_uri(run_id, task_key, latest.attempt)
    patch = artifacts.read_artifact(conn, uri=uri, blobs=blobs)
    index = artifacts.read_artifact(conn, uri=diff_index_uri(run_id, task_key, latest.attempt))
    if patch is None or index is None:
        return base
    files = WorkspaceDiff.model_validate_json(index.content).files
    return base.model_copy(
        update={"patch": patch.content.decode(), "files": files, "artifactUri": uri}
    )


def run_diff(conn: sa.Connection, *, run_id: str, blobs: BlobStore) -> RunDiff:
    """Every task's diff in task order, their concatenation, and the paths in conflict."""
    diffs = [
        task_diff(conn, run_id=run_id, task_key=key, blobs=blobs)
        for key in run_tasks.list_task_keys(conn, run_id=run_id)
    ]
    changed = [diff for diff in diffs if diff.files]
    return RunDiff(
        runId=run_id,
        patch="".join(diff.patch for diff in changed),
        tasks=changed,
        conflicts=conflicts(changed),
    )
