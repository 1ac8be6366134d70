"""OpenCode call ledger: one row per planner call attempt, in every OC_MODE.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.opencode_calls (
    id             bigserial PRIMARY KEY,
    run_id         text NOT NULL REFERENCES app.runs(id),
    step_id        text NOT NULL,
    attempt        integer NOT NULL CHECK (attempt > 0),
    mode           text NOT NULL CHECK (mode IN ('live','record','replay')),
    source         text NOT NULL CHECK (source IN ('live','fixture','builtin','fallback')),
    agent          text NOT NULL,
    schema_hash    text NOT NULL CHECK (schema_hash ~ '^[0-9a-f]{64}$'),
    fixture_key    text NOT NULL CHECK (fixture_key ~ '^[0-9a-f]{64}$'),
    prompt         text NOT NULL,
    prompt_version text NOT NULL,
    reply          jsonb,
    plan           jsonb,
    detail         text,
    duration_ms    integer NOT NULL CHECK (duration_ms >= 0),
    tokens         jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_code     text,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, step_id, attempt),
    CHECK (plan IS NOT NULL OR error IS NOT NULL)
);
"""


def upgrade() -> None:
    op.execute(DDL)
