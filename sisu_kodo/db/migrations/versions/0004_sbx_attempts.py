"""Sandbox attempts recorded as started, before anyone waits for them: app.sbx_attempts.

A row is written once the provider started an attempt (its sandbox ref known) and
before the worker waits for its command; the attempt's outcome stays in app.sbx_runs.
A started attempt without an outcome is in flight, or was left by a worker that died:
the step that runs again after a crash re-attaches to it instead of starting a second
execution, and the attempt number comes from here, not from DBOS's retry counter.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.sbx_attempts (
    run_id         text NOT NULL REFERENCES app.runs(id),
    step_id        text NOT NULL,
    task_key       text NOT NULL,
    attempt        integer NOT NULL CHECK (attempt > 0),
    attempt_offset integer NOT NULL CHECK (attempt_offset >= 0 AND attempt_offset < attempt),
    sandbox_ref    text NOT NULL,
    provider       text NOT NULL,
    executor_id    text NOT NULL,
    request        jsonb NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome_at     timestamptz,
    PRIMARY KEY (run_id, step_id, task_key, attempt)
);
-- The cancel watchers' once-a-second query reads only attempts still waiting for an
-- outcome, however long the history grows.
CREATE INDEX sbx_attempts_waiting_idx ON app.sbx_attempts (executor_id)
    WHERE outcome_at IS NULL;
-- Attempts recorded before this table existed were started too: one row each, so every
-- outcome has its started attempt (the oracle's one-to-one holds for old runs).
INSERT INTO app.sbx_attempts (run_id, step_id, task_key, attempt, attempt_offset,
                              sandbox_ref, provider, executor_id, request, started_at,
                              outcome_at)
SELECT run_id, step_id, task_key, attempt, attempt_offset,
       COALESCE(response->>'sandboxRef', 'unknown'), provider, 'unknown', request, created_at,
       created_at
FROM app.sbx_runs;
COMMENT ON TABLE app.sbx_attempts IS
    'sandbox attempts started; each gets exactly one outcome row in app.sbx_runs';
COMMENT ON COLUMN app.sbx_attempts.outcome_at IS
    'when the outcome (app.sbx_runs row) was recorded, in the same transaction';
COMMENT ON COLUMN app.sbx_attempts.executor_id IS
    'the worker waiting for the attempt: the one that started it, or that re-attached';
"""


def upgrade() -> None:
    op.execute(DDL)
