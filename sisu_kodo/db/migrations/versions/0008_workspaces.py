"""Workspaces: uploads, the snapshot each run captured, the approval's workspace hash, and
artifacts whose bytes live in the blob store.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.workspaces (
    id                text PRIMARY KEY,
    tenant            text,
    created_by_key_id text,
    snapshot_sha256   text NOT NULL CHECK (snapshot_sha256 ~ '^[0-9a-f]{64}$'),
    file_count        integer NOT NULL CHECK (file_count >= 0),
    size              bigint NOT NULL CHECK (size >= 0),
    manifest          jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE app.workspaces IS
    'Uploaded archives (POST /workspaces), each already turned into a snapshot blob';

CREATE TABLE app.run_workspaces (
    run_id          text PRIMARY KEY REFERENCES app.runs(id),
    source          text NOT NULL CHECK (source IN ('git', 'upload')),
    url             text,
    ref             text,
    commit          text,
    workspace_id    text REFERENCES app.workspaces(id),
    snapshot_sha256 text NOT NULL CHECK (snapshot_sha256 ~ '^[0-9a-f]{64}$'),
    file_count      integer NOT NULL CHECK (file_count >= 0),
    size            bigint NOT NULL CHECK (size >= 0),
    summary         jsonb NOT NULL,
    manifest        jsonb NOT NULL,
    captured_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE app.run_workspaces IS
    'The workspace snapshot a run captured once at its start (the approval binds its sha256)';

ALTER TABLE app.plan_approvals
    ADD COLUMN workspace_sha256 text CHECK (workspace_sha256 ~ '^[0-9a-f]{64}$');

ALTER TABLE app.artifacts
    ADD COLUMN blob_sha256 text CHECK (blob_sha256 ~ '^[0-9a-f]{64}$'),
    ALTER COLUMN content DROP NOT NULL,
    ADD CONSTRAINT artifacts_content_or_blob CHECK (content IS NOT NULL OR blob_sha256 IS NOT NULL);
"""


def upgrade() -> None:
    op.execute(DDL)
