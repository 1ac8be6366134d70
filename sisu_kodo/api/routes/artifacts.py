"""Routes: /artifacts/{uri}."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sisu_kodo.api.deps import ReaderDep, StateDep
from sisu_kodo.api.errors import error_responses
from sisu_kodo.db import artifacts
from sisu_kodo.errors import NotFoundError

router = APIRouter(tags=["artifacts"])


@router.get(
    "/artifacts/{uri:path}", response_class=Response, responses=error_responses(401, 403, 404)
)
def get_artifact(uri: str, request: Request, state: StateDep, caller: ReaderDep) -> Response:
    """An artifact's bytes by its (URL-encoded) `artifact://` URI; ETag is its sha256."""
    found = None
    if "\x00" not in uri:  # PostgreSQL text holds no NUL, so no artifact has one
        with state.engine.connect() as conn:
            tenant = artifacts.read_artifact_tenant(conn, uri=uri)
            if caller.principal.sees(tenant):  # another tenant's artifact: as if missing
                found = artifacts.read_artifact(conn, uri=uri, blobs=state.blobs)
    if found is None:
        raise NotFoundError(f"artifact {uri} not found", {"uri": uri})
    etag = f'"{found.meta.sha256}"'
    headers = {"ETag": etag, "X-Content-SHA256": found.meta.sha256}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.content, media_type=found.meta.media_type, headers=headers)
