"""The capture at run start: the run's workspace becomes one recorded snapshot, once.

A git source is cloned and snapshotted, an upload's snapshot is taken as it was stored;
the snapshot goes to the blob store (content-addressed: a re-run puts the same object)
and `app.run_workspaces` records it with ON CONFLICT DO NOTHING, so a capture re-run
after a crash (when the repository may have moved on) returns the first one recorded.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.contracts.workspaces import WORKSPACE_INPUT, WorkspaceInput
from sisu_kodo.db import intents, runs, workspaces
from sisu_kodo.db.engine import reconnecting
from sisu_kodo.errors import ForbiddenError, NotFoundError
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.payloads import CapturedWorkspace
from sisu_kodo.workspaces import caps_of, capture_git, read_snapshot
from sisu_kodo.workspaces.snapshot import Snapshot

CAPTURE_STEP = "CaptureWorkspaceST"


def capture_workspace(run_id: str) -> CapturedWorkspace | None:
    """The run's workspace snapshot (captured now, or as recorded before); None without one."""
    return DBOS.run_step({"name": CAPTURE_STEP}, _capture, run_id)


def _capture(run_id: str) -> CapturedWorkspace | None:
    rt = runtime.current()
    recorded, given, tenant = _read_start(rt.engine, run_id)
    if recorded is not None:
        return CapturedWorkspace(sha256=recorded.snapshot_sha256, summary=recorded.summary)
    if given is None:
        return None
    blobs = rt.require_blobs()
    fields: dict[str, Any]
    if given.git is not None:
        captured = capture_git(given.git, caps_of(rt.settings))
        snapshot = captured.snapshot
        blobs.put(snapshot.tar)
        fields = {"source": "git", "url": given.git.url, "ref": given.git.ref}
        fields |= {"commit": captured.commit, "workspace_id": None}
    else:
        assert given.upload is not None
        upload = _upload(rt.engine, given.upload, tenant)
        snapshot = read_snapshot(blobs.get(upload.snapshot_sha256))
        fields = {"source": "upload", "url": None, "ref": None, "commit": None}
        fields["workspace_id"] = upload.id
    row = _record(rt.engine, run_id, snapshot, fields)
    runtime.chaos_pause("capture_recorded")  # a kill here: recorded, not yet checkpointed
    return CapturedWorkspace(sha256=row.snapshot_sha256, summary=row.summary)


@reconnecting
def _read_start(
    engine: sa.Engine, run_id: str
) -> tuple[workspaces.RunWorkspaceRow | None, WorkspaceInput | None, str]:
    with engine.connect() as conn:
        run = runs.require_run(conn, run_id=run_id)
        intent = intents.read_intent(conn, intent_id=run.intent_id)
        assert intent is not None, "runs.intent_id is a foreign key"
        recorded = workspaces.read_run_workspace(conn, run_id=run_id)
    raw = intent.inputs.get(WORKSPACE_INPUT)
    given = WorkspaceInput.model_validate(raw) if raw is not None else None
    return recorded, given, run.queue_partition_key


@reconnecting
def _upload(engine: sa.Engine, workspace_id: str, tenant: str) -> workspaces.WorkspaceRow:
    with engine.connect() as conn:
        upload = workspaces.read_workspace(conn, workspace_id=workspace_id)
    if upload is None:
        raise NotFoundError(f"workspace {workspace_id} not found", {"workspaceId": workspace_id})
    if upload.tenant is not None and upload.tenant != tenant:
        raise ForbiddenError(
            f"workspace {workspace_id} belongs to another tenant than the run's",
            {"workspaceId": workspace_id},
        )
    return upload


@reconnecting
def _record(
    engine: sa.Engine, run_id: str, snapshot: Snapshot, fields: dict[str, Any]
) -> workspaces.RunWorkspaceRow:
    with engine.begin() as conn:
        return workspaces.record_run_workspace(
            conn,
            run_id=run_id,
            snapshot_sha256=snapshot.sha256,
            file_count=snapshot.file_count,
            size=snapshot.size,
            summary=snapshot.summary(),
            manifest=snapshot.manifest(),
            **fields,
        )
