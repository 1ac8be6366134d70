"""Routes: /artifacts/{uri}."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sisu_kodo.api import service
from sisu_kodo.api.deps import ReaderDep, StateDep
from sisu_kodo.api.errors import error_responses

router = APIRouter(tags=["artifacts"])


@router.get(
    "/artifacts/{uri:path}", response_class=Response, responses=error_responses(401, 403, 404)
)
def get_artifact(uri: str, request: Request, state: StateDep, caller: ReaderDep) -> Response:
    """An artifact's bytes by its (URL-encoded) `artifact://` URI; ETag is its sha256."""
    with state.engine.connect() as conn:
        found = service.read_visible_artifact(conn, caller.principal, uri=uri, blobs=state.blobs)
    etag = f'"{found.meta.sha256}"'
    headers = {"ETag": etag, "X-Content-SHA256": found.meta.sha256}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.content, media_type=found.meta.media_type, headers=headers)
