"""Artifacts: content-addressed outputs (plans, task lists, stdout, stderr) with sha256.

A row holds its bytes, or (above the spill threshold, when a blob store is given) only the
metadata and `blob_sha256`, the key of its bytes in the blob store: reads give the bytes
either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from sisu_kodo.blobs.port import BlobMissingError, BlobStore, Spill
from sisu_kodo.canonical import sha256_hex
from sisu_kodo.contracts.artifacts import media_type_for
from sisu_kodo.errors import ConflictError


@dataclass(frozen=True)
class ArtifactMeta:
    uri: str
    kind: str
    media_type: str
    sha256: str
    size: int
    step_id: str
    task_key: str | None


@dataclass(frozen=True)
class Artifact:
    meta: ArtifactMeta
    content: bytes


@dataclass(frozen=True)
class NewArtifact:
    """One artifact to store (see `put_artifacts`); `NewArtifact.of` hashes its bytes."""

    uri: str
    kind: str
    content: bytes
    sha256: str

    @classmethod
    def of(cls, uri: str, kind: str, content: bytes) -> NewArtifact:
        return cls(uri, kind, content, sha256_hex(content))


def put_artifact(
    conn: sa.Connection,
    *,
    uri: str,
    run_id: str,
    step_id: str,
    kind: str,
    content: bytes,
    task_key: str | None = None,
    spill: Spill | None = None,
) -> ArtifactMeta:
    """Store bytes under `uri` once; re-storing identical bytes is a no-op, others conflict.

    With `spill`, bytes above its threshold go to its blob store first (idempotent: keyed
    by their sha256) and the row points at them.
    """
    (meta,) = put_artifacts(
        conn,
        [NewArtifact.of(uri, kind, content)],
        run_id=run_id,
        step_id=step_id,
        task_key=task_key,
        spill=spill,
    )
    return meta


def put_artifacts(
    conn: sa.Connection,
    items: list[NewArtifact],
    *,
    run_id: str,
    step_id: str,
    task_key: str | None = None,
    spill: Spill | None = None,
) -> list[ArtifactMeta]:
    """`put_artifact` for several artifacts of one step, in one statement (every task
    attempt stores its outputs and their index: a round trip each would be the bulk of
    recording it). The URIs already stored are then checked one by one, as above."""
    if not items:
        return []
    metas = [
        ArtifactMeta(
            uri=item.uri,
            kind=item.kind,
            media_type=media_type_for(item.kind),
            sha256=item.sha256,
            size=len(item.content),
            step_id=step_id,
            task_key=task_key,
        )
        for item in items
    ]
    blobs = [
        spill.store.put(item.content) if spill and spill.wants(item.content) else None
        for item in items
    ]
    # The blob column is named only when used: inline writes keep the pre-0008 statement.
    with_blob = any(blobs)
    params: dict[str, object] = {}
    values = []
    for index, (meta, item, blob) in enumerate(zip(metas, items, blobs, strict=True)):
        row: dict[str, object] = {
            "uri": meta.uri,
            "run_id": run_id,
            "step_id": step_id,
            "task_key": task_key,
            "kind": meta.kind,
            "media_type": meta.media_type,
            "sha256": meta.sha256,
            "size": meta.size,
            "content": None if blob else item.content,
        }
        if with_blob:
            row["blob_sha256"] = blob
        params.update({f"{column}_{index}": value for column, value in row.items()})
        values.append("(" + ", ".join(f":{column}_{index}" for column in row) + ")")
    columns = ", ".join(row)  # every row names the same columns
    inserted = set(
        conn.execute(
            sa.text(
                f"INSERT INTO app.artifacts ({columns}) VALUES {', '.join(values)}"
                " ON CONFLICT (uri) DO NOTHING RETURNING uri"
            ),
            params,
        ).scalars()
    )
    for meta in metas:
        if meta.uri not in inserted:
            _require_same(conn, meta)
    return metas


def _require_same(conn: sa.Connection, meta: ArtifactMeta) -> None:
    existing = conn.execute(
        sa.text("SELECT sha256 FROM app.artifacts WHERE uri = :uri"), {"uri": meta.uri}
    ).scalar_one()
    if existing != meta.sha256:
        raise ConflictError(
            f"artifact {meta.uri} already stored with other content",
            {"uri": meta.uri, "stored": existing, "offered": meta.sha256},
        )


_META_COLUMNS = "uri, kind, media_type, sha256, size, step_id, task_key"


def read_artifact(
    conn: sa.Connection, *, uri: str, blobs: BlobStore | None = None
) -> Artifact | None:
    """The artifact with its bytes, from its row or (spilled) from `blobs`."""
    row = conn.execute(
        sa.text(
            f"SELECT {_META_COLUMNS}, content, blob_sha256 FROM app.artifacts WHERE uri = :uri"
        ),
        {"uri": uri},
    ).one_or_none()
    if row is None:
        return None
    meta, content, blob = ArtifactMeta(*row[:-2]), row[-2], row[-1]
    if content is not None:
        return Artifact(meta, bytes(content))
    if blobs is None:
        raise BlobMissingError(f"artifact {uri} is in the blob store; none given", {"uri": uri})
    return Artifact(meta, blobs.get(blob))


def list_artifacts(
    conn: sa.Connection,
    *,
    run_id: str,
    step: str | None = None,
    exclude_step: str | None = None,
    task_keys: list[str] | None = None,
) -> list[ArtifactMeta]:
    rows = conn.execute(
        sa.text(
            f"SELECT {_META_COLUMNS} FROM app.artifacts WHERE run_id = :run_id"
            " AND (CAST(:step AS text) IS NULL OR step_id = :step)"
            " AND (CAST(:exclude AS text) IS NULL OR step_id <> :exclude)"
            " AND (CAST(:keys AS text[]) IS NULL OR task_key = ANY(:keys))"
            " ORDER BY created_at, uri"
        ),
        {"run_id": run_id, "step": step, "exclude": exclude_step, "keys": task_keys},
    ).all()
    return [ArtifactMeta(*row) for row in rows]


def read_artifact_tenant(conn: sa.Connection, *, uri: str) -> str | None:
    """The tenant (its run's partition) an artifact belongs to; None for no artifact."""
    tenant: str | None = conn.execute(
        sa.text(
            "SELECT r.queue_partition_key FROM app.artifacts a JOIN app.runs r ON r.id = a.run_id"
            " WHERE a.uri = :uri"
        ),
        {"uri": uri},
    ).scalar_one_or_none()
    return tenant
