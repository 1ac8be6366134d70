"""Core ledger: intents, runs, steps, events, approvals, artifacts, sandbox runs, receipts.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.recipes (
    name                text PRIMARY KEY,
    version             integer NOT NULL DEFAULT 1 CHECK (version > 0),
    queue_name          text NOT NULL CHECK (queue_name IN ('intentQ')),
    max_concurrency     integer NOT NULL CHECK (max_concurrency > 0),
    max_steps           integer NOT NULL CHECK (max_steps > 0),
    max_sandbox_minutes integer NOT NULL CHECK (max_sandbox_minutes > 0),
    spec                jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.intents (
    id          text PRIMARY KEY,
    goal        text NOT NULL CHECK (length(btrim(goal)) > 0),
    inputs      jsonb NOT NULL DEFAULT '{}'::jsonb,
    constraints jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.runs (
    id                  text PRIMARY KEY,
    intent_id           text NOT NULL UNIQUE REFERENCES app.intents(id),
    workflow_id         text NOT NULL UNIQUE,
    status              text NOT NULL CHECK (status IN
        ('queued','running','waiting_input','succeeded','failed','retries_exceeded','canceled')),
    last_step           text,
    next_action         text NOT NULL DEFAULT 'NONE',
    error               text,
    retry_count         integer NOT NULL DEFAULT 0,
    queue_partition_key text NOT NULL CHECK (length(btrim(queue_partition_key)) > 0),
    recipe_name         text NOT NULL REFERENCES app.recipes(name),
    start_request       jsonb NOT NULL,
    app_version         text NOT NULL,
    plan_sha256         text,
    tasks_sha256        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_status_idx ON app.runs (status);

CREATE TABLE app.run_steps (
    run_id      text NOT NULL REFERENCES app.runs(id),
    step_id     text NOT NULL,
    attempt     integer NOT NULL DEFAULT 1 CHECK (attempt > 0),
    phase       text NOT NULL,
    output      jsonb,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (run_id, step_id, attempt)
);

CREATE TABLE app.run_events (
    run_id  text NOT NULL REFERENCES app.runs(id),
    seq     integer NOT NULL CHECK (seq > 0),
    at      timestamptz NOT NULL DEFAULT now(),
    type    text NOT NULL,
    status  text NOT NULL,
    step_id text,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE app.plan_approvals (
    run_id       text PRIMARY KEY REFERENCES app.runs(id),
    decision     text NOT NULL CHECK (decision IN ('approved','rejected')),
    decided_by   text NOT NULL,
    notes        text,
    plan_sha256  text NOT NULL CHECK (plan_sha256 ~ '^[0-9a-f]{64}$'),
    tasks_sha256 text NOT NULL CHECK (tasks_sha256 ~ '^[0-9a-f]{64}$'),
    decided_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.artifacts (
    uri        text PRIMARY KEY,
    run_id     text NOT NULL REFERENCES app.runs(id),
    step_id    text NOT NULL,
    task_key   text,
    kind       text NOT NULL,
    media_type text NOT NULL,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size       bigint NOT NULL CHECK (size >= 0),
    content    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_run_idx ON app.artifacts (run_id, step_id, task_key);

CREATE TABLE app.sbx_runs (
    run_id     text NOT NULL REFERENCES app.runs(id),
    step_id    text NOT NULL,
    task_key   text NOT NULL,
    attempt    integer NOT NULL CHECK (attempt > 0),
    provider   text NOT NULL,
    request    jsonb NOT NULL,
    response   jsonb NOT NULL,
    err_code   text NOT NULL,
    metrics    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, step_id, task_key, attempt)
);
CREATE INDEX sbx_runs_task_key_idx ON app.sbx_runs (task_key);

CREATE TABLE app.mock_receipts (
    receipt_key   text PRIMARY KEY,
    run_id        text NOT NULL REFERENCES app.runs(id),
    task_key      text NOT NULL,
    seen_count    integer NOT NULL DEFAULT 1 CHECK (seen_count > 0),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mock_receipts_run_idx ON app.mock_receipts (run_id);

CREATE TABLE app.workers (
    executor_id  text PRIMARY KEY,
    app_version  text NOT NULL,
    pid          integer NOT NULL,
    hostname     text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(DDL)
