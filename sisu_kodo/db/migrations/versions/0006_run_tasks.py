"""DecideST's tasks as rows: app.run_tasks, one per decided task, in task-list order.

The task-list artifact stays (the approval binds to its sha256); the rows let a
running fan-out's RunView page its tasks and count them by status in SQL instead of
loading the whole list. Runs decided before this revision are filled from their
task-list artifacts.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.run_tasks (
    run_id     text NOT NULL REFERENCES app.runs(id),
    position   integer NOT NULL CHECK (position >= 0),
    task_key   text NOT NULL,
    task_index integer NOT NULL,
    name       text NOT NULL,
    command    text NOT NULL,
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, task_key)
);
COMMENT ON TABLE app.run_tasks IS
    'DecideST''s tasks, one row each, position = place in the task_list artifact (0-based)';

INSERT INTO app.run_tasks (run_id, position, task_key, task_index, name, command)
SELECT a.run_id, t.ordinality - 1, t.task->>'taskKey', (t.task->>'index')::int,
       t.task->>'name', t.task->>'command'
  FROM app.artifacts a,
       jsonb_array_elements(convert_from(a.content, 'UTF8')::jsonb)
           WITH ORDINALITY AS t(task, ordinality)
 WHERE a.step_id = 'DecideST' AND a.kind = 'task_list';
"""


def upgrade() -> None:
    op.execute(DDL)
