"""The retry round of each sandbox attempt in its own column of app.sbx_runs.

Until now the round's offset rode inside `response` as `attemptOffset`; it moves to
`attempt_offset`, filled from there, and leaves `response` to what the sandbox said.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DDL = r"""
ALTER TABLE app.sbx_runs ADD COLUMN attempt_offset integer NOT NULL DEFAULT 0;
UPDATE app.sbx_runs
   SET attempt_offset = COALESCE((response->>'attemptOffset')::int, 0),
       response = response - 'attemptOffset'
 WHERE response ? 'attemptOffset';
-- No default from here on: every writer states the round its attempt belongs to.
ALTER TABLE app.sbx_runs ALTER COLUMN attempt_offset DROP DEFAULT;
ALTER TABLE app.sbx_runs ADD CONSTRAINT sbx_runs_attempt_offset_check
    CHECK (attempt_offset >= 0 AND attempt_offset < attempt);
COMMENT ON COLUMN app.sbx_runs.attempt_offset IS
    'attempts of the task''s earlier retry rounds (attempt - attempt_offset: within the round)';
"""


def upgrade() -> None:
    op.execute(DDL)
