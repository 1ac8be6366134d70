"""Routes: /workspaces (uploads) and the diffs of a run's tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from sisu_kodo.api import service, workspaces
from sisu_kodo.api.deps import ApiState, Caller, ReaderDep, StateDep, SubmitterDep, audited_unit
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.middleware import RawBodies
from sisu_kodo.api.paths import IdPath
from sisu_kodo.config import Settings
from sisu_kodo.contracts.workspaces import RunDiff, TaskDiff, WorkspaceView
from sisu_kodo.errors import InvalidRequestError
from sisu_kodo.workspaces.errors import UnsupportedUploadError

router = APIRouter(tags=["workspaces"])

UPLOAD_PATH = "/workspaces"
MULTIPART = "multipart/form-data"
# curl's --data-binary labels a body x-www-form-urlencoded unless told otherwise.
ARCHIVE_TYPES = frozenset(
    {
        "application/x-tar",
        "application/gzip",
        "application/x-gzip",
        "application/x-gtar",
        "application/zip",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        MULTIPART,
    }
)
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            **dict.fromkeys(sorted(ARCHIVE_TYPES - {MULTIPART}), _BINARY),
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
TaskKeyPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[0-9a-f]+$")]


def raw_bodies(settings: Settings) -> dict[str, RawBodies]:
    """The body rules of the upload route, for the body middleware."""
    return {
        UPLOAD_PATH: RawBodies(
            max_bytes=settings.workspaces.max_upload_bytes,
            setting="SISU_WORKSPACE_MAX_UPLOAD_BYTES",
        )
    }


@router.post(
    UPLOAD_PATH,
    status_code=status.HTTP_201_CREATED,
    response_model=WorkspaceView,
    responses=error_responses(400, 401, 403, 413),
    openapi_extra=_UPLOAD_BODY,
)
async def create_workspace(
    request: Request, state: StateDep, caller: SubmitterDep
) -> WorkspaceView:
    """Upload a tar, tar.gz or zip (raw body, or the `file` part of a multipart form); it is
    checked and turned into a snapshot at once. Use its id as `inputs.workspace.upload`."""
    raw = await _archive_bytes(request)
    return await run_in_threadpool(_create_workspace, state, caller, raw)


def _create_workspace(state: ApiState, caller: Caller, raw: bytes) -> WorkspaceView:
    with audited_unit(state, caller, status=201) as unit:
        view = workspaces.create_workspace(
            unit.conn, raw, settings=state.settings, blobs=state.blobs, principal=caller.principal
        )
        caller.target = view.workspaceId
        return view


async def _archive_bytes(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in ARCHIVE_TYPES:
        raise UnsupportedUploadError(
            f"Content-Type {media or 'none'!r} is not an archive; send one of "
            + ", ".join(sorted(ARCHIVE_TYPES)),
            [{"path": "content-type", "message": "unsupported media type"}],
        )
    if media != MULTIPART:
        return await request.body()
    try:
        form = await request.form(max_files=1, max_fields=10)
    except (MultiPartException, HTTPException) as exc:
        raise InvalidRequestError(
            f"malformed multipart body: {exc}", [{"path": "body", "message": str(exc)}]
        ) from exc
    upload = next((value for value in form.values() if isinstance(value, UploadFile)), None)
    if upload is None:
        raise InvalidRequestError(
            "the multipart body has no file part", [{"path": "file", "message": "missing"}]
        )
    return await upload.read()


@router.get(
    "/workspaces/{workspace_id}",
    response_model=WorkspaceView,
    responses=error_responses(401, 403, 404),
)
def get_workspace(workspace_id: IdPath, state: StateDep, caller: ReaderDep) -> WorkspaceView:
    """An uploaded workspace: its snapshot's sha256, file count and size."""
    with state.engine.connect() as conn:
        row = workspaces.require_visible_workspace(conn, caller.principal, workspace_id)
        return workspaces.view_of(row)


@router.get("/runs/{run_id}/diff", response_model=RunDiff, responses=error_responses(401, 403, 404))
def get_run_diff(run_id: IdPath, state: StateDep, caller: ReaderDep) -> RunDiff:
    """Every task's changes to the workspace (empty when nothing changed), and the files
    more than one task changed (`conflicts`)."""
    with state.engine.connect() as conn:
        service.require_visible_run(conn, caller.principal, run_id=run_id)
        return workspaces.run_diff(conn, run_id=run_id, blobs=state.blobs)


@router.get(
    "/runs/{run_id}/tasks/{task_key}/diff",
    response_model=TaskDiff,
    responses=error_responses(400, 401, 403, 404),
)
def get_task_diff(
    run_id: IdPath, task_key: TaskKeyPath, state: StateDep, caller: ReaderDep
) -> TaskDiff:
    """One task's changes to the workspace, from its latest attempt."""
    with state.engine.connect() as conn:
        service.require_visible_run(conn, caller.principal, run_id=run_id)
        return workspaces.task_diff(conn, run_id=run_id, task_key=task_key, blobs=state.blobs)
