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
    digest = sha256_hex(content)
    blob = None
    if spill is not None and spill.wants(content):
        blob = spill.store.put(content)
    meta = ArtifactMeta(uri, kind, media_type_for(kind), digest, len(content), step_id, task_key)
    # The blob column is named only when used: inline writes keep the pre-0008 statement.
    columns = "uri, run_id, step_id, task_key, kind, media_type, sha256, size, content"
    values = ":uri, :run_id, :step_id, :task_key, :kind, :media_type, :sha256, :size, :content"
    if blob is not None:
        columns, values = f"{columns}, blob_sha256", f"{values}, :blob"
    inserted = conn.execute(
        sa.text(
            f"INSERT INTO app.artifacts ({columns}) VALUES ({values}) ON CONFLICT (uri) DO NOTHING"
        ),
        {
            "uri": uri,
            "run_id": run_id,
            "step_id": step_id,
            "task_key": task_key,
            "kind": kind,
            "media_type": meta.media_type,
            "sha256": digest,
            "size": len(content),
            "content": None if blob else content,
            "blob": blob,
        },
    ).rowcount
    if not inserted:
        existing = conn.execute(
            sa.text("SELECT sha256 FROM app.artifacts WHERE uri = :uri"), {"uri": uri}
        ).scalar_one()
        if existing != digest:
            raise ConflictError(
                f"artifact {uri} already stored with other content",
                {"uri": uri, "stored": existing, "offered": digest},
            )
    return meta


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
