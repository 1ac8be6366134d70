"""Workspaces: uploads (app.workspaces) and the snapshot each run captured (app.run_workspaces)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class WorkspaceRow:
    id: str
    tenant: str | None
    created_by_key_id: str | None
    snapshot_sha256: str
    file_count: int
    size: int
    manifest: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class RunWorkspaceRow:
    run_id: str
    source: str
    url: str | None
    ref: str | None
    commit: str | None
    workspace_id: str | None
    snapshot_sha256: str
    file_count: int
    size: int
    summary: dict[str, Any]


def create_workspace(
    conn: sa.Connection,
    *,
    workspace_id: str,
    tenant: str | None,
    created_by_key_id: str | None,
    snapshot_sha256: str,
    file_count: int,
    size: int,
    manifest: dict[str, Any],
) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO app.workspaces (id, tenant, created_by_key_id, snapshot_sha256,"
            " file_count, size, manifest)"
            " VALUES (:id, :tenant, :key_id, :sha, :count, :size, :manifest)"
        ).bindparams(sa.bindparam("manifest", type_=JSONB)),
        {
            "id": workspace_id,
            "tenant": tenant,
            "key_id": created_by_key_id,
            "sha": snapshot_sha256,
            "count": file_count,
            "size": size,
            "manifest": manifest,
        },
    )


def read_workspace(conn: sa.Connection, *, workspace_id: str) -> WorkspaceRow | None:
    row = conn.execute(
        sa.text(
            "SELECT id, tenant, created_by_key_id, snapshot_sha256, file_count, size, manifest,"
            " created_at FROM app.workspaces WHERE id = :id"
        ),
        {"id": workspace_id},
    ).one_or_none()
    return WorkspaceRow(*row) if row else None


def record_run_workspace(
    conn: sa.Connection,
    *,
    run_id: str,
    source: str,
    url: str | None,
    ref: str | None,
    commit: str | None,
    workspace_id: str | None,
    snapshot_sha256: str,
    file_count: int,
    size: int,
    summary: dict[str, Any],
    manifest: dict[str, Any],
) -> RunWorkspaceRow:
    """Record the run's capture once: a capture re-run after a crash (whose repository may
    have moved on) finds the first one recorded and returns it."""
    conn.execute(
        sa.text(
            "INSERT INTO app.run_workspaces (run_id, source, url, ref, commit, workspace_id,"
            " snapshot_sha256, file_count, size, summary, manifest)"
            " VALUES (:run_id, :source, :url, :ref, :commit, :workspace_id, :sha, :count, :size,"
            " :summary, :manifest) ON CONFLICT (run_id) DO NOTHING"
        ).bindparams(sa.bindparam("summary", type_=JSONB), sa.bindparam("manifest", type_=JSONB)),
        {
            "run_id": run_id,
            "source": source,
            "url": url,
            "ref": ref,
            "commit": commit,
            "workspace_id": workspace_id,
            "sha": snapshot_sha256,
            "count": file_count,
            "size": size,
            "summary": summary,
            "manifest": manifest,
        },
    )
    recorded = read_run_workspace(conn, run_id=run_id)
    assert recorded is not None
    return recorded


def read_run_workspace(conn: sa.Connection, *, run_id: str) -> RunWorkspaceRow | None:
    row = conn.execute(
        sa.text(
            "SELECT run_id, source, url, ref, commit, workspace_id, snapshot_sha256, file_count,"
            " size, summary FROM app.run_workspaces WHERE run_id = :run_id"
        ),
        {"run_id": run_id},
    ).one_or_none()
    return RunWorkspaceRow(*row) if row else None


def read_manifest(conn: sa.Connection, *, run_id: str) -> dict[str, Any] | None:
    manifest: dict[str, Any] | None = conn.execute(
        sa.text("SELECT manifest FROM app.run_workspaces WHERE run_id = :run_id"),
        {"run_id": run_id},
    ).scalar_one_or_none()
    return manifest
