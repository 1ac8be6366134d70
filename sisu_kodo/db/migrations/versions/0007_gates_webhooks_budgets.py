"""Human gates: approval deadlines, webhook subscriptions, their messages and delivery
attempts, and the approved task set of a run.

- app.gate_deadlines: one row per open gate with a deadline; the workers' gate sweep
  records the warning (gate.expiring) and closes an unanswered gate as a rejection.
- app.webhook_outbox: every notifiable run event, written with the event; the workers'
  dispatcher turns each into messages (one per matching subscription) and marks it.
- app.webhook_subscriptions: per tenant; `secret` is the Standard Webhooks signing secret
  (whsec_...), kept as-is because signing needs it (see docs/security.md).
- app.webhook_messages: (webhook-id, subscription) pairs, delivered by one DBOS workflow each.
- app.webhook_deliveries: every HTTP attempt with its status code, latency and error.
- app.runs.approved_tasks: the task keys the approval covers (NULL: all of them), with
  their sha256 in approved_tasks_sha256; app.runs.canary: tasks to run before parking again;
  app.runs.sandbox_minutes: the sandbox budget a retry raised (NULL: the workload's).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.gate_deadlines (
    run_id      text PRIMARY KEY REFERENCES app.runs(id),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    ttl_seconds integer NOT NULL CHECK (ttl_seconds > 0),
    warn_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    warned_at   timestamptz,
    closed_at   timestamptz,
    closed_as   text CHECK (closed_as IN ('answered', 'expired'))
);
CREATE INDEX gate_deadlines_open_idx ON app.gate_deadlines (warn_at, expires_at)
    WHERE closed_at IS NULL;

CREATE TABLE app.webhook_outbox (
    run_id        text NOT NULL,
    seq           integer NOT NULL,
    event_type    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY (run_id, seq) REFERENCES app.run_events(run_id, seq)
);
CREATE INDEX webhook_outbox_pending_idx ON app.webhook_outbox (created_at)
    WHERE dispatched_at IS NULL;

CREATE TABLE app.webhook_subscriptions (
    id          text PRIMARY KEY,
    tenant      text NOT NULL CHECK (length(btrim(tenant)) > 0),
    url         text NOT NULL,
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    secret      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX webhook_subscriptions_tenant_idx ON app.webhook_subscriptions (tenant)
    WHERE deleted_at IS NULL;

CREATE TABLE app.webhook_messages (
    id              text NOT NULL,
    subscription_id text NOT NULL REFERENCES app.webhook_subscriptions(id),
    run_id          text NOT NULL REFERENCES app.runs(id),
    seq             integer NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'gave_up')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (id, subscription_id)
);
CREATE INDEX webhook_messages_run_idx ON app.webhook_messages (run_id, seq);

CREATE TABLE app.webhook_deliveries (
    message_id      text NOT NULL,
    subscription_id text NOT NULL,
    attempt         integer NOT NULL CHECK (attempt > 0),
    run_id          text NOT NULL REFERENCES app.runs(id),
    event_type      text NOT NULL,
    url             text NOT NULL,
    status_code     integer,
    latency_ms      integer,
    error           text,
    attempted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (message_id, subscription_id, attempt),
    FOREIGN KEY (message_id, subscription_id) REFERENCES app.webhook_messages(id, subscription_id)
);
CREATE INDEX webhook_deliveries_run_idx ON app.webhook_deliveries (run_id, attempted_at);

ALTER TABLE app.runs
    ADD COLUMN approved_tasks jsonb,
    ADD COLUMN approved_tasks_sha256 text CHECK (approved_tasks_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN canary integer CHECK (canary > 0),
    ADD COLUMN sandbox_minutes integer CHECK (sandbox_minutes > 0);
"""


def upgrade() -> None:
    op.execute(DDL)
