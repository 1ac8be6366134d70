"""Identity: API keys, the server's hashing secret, per-approver votes, the audit log.

Intents and runs remember who created and started them; the gate's decision row
remembers the key that opened (or closed) it. The audit log is append-only: the
database itself refuses UPDATE, DELETE and TRUNCATE on it.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DDL = r"""
CREATE TABLE app.api_keys (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    name         text NOT NULL CHECK (length(btrim(name)) > 0),
    roles        text[] NOT NULL CHECK (cardinality(roles) > 0),
    tenants      text[] NOT NULL CHECK (cardinality(tenants) > 0),
    secret_hash  text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- The HMAC key the key hashes are made with: a leaked api_keys table alone is useless.
CREATE TABLE app.auth_secrets (
    name   text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) >= 32)
);

ALTER TABLE app.intents ADD COLUMN tenant text, ADD COLUMN created_by_key_id text;
ALTER TABLE app.runs ADD COLUMN started_by_key_id text, ADD COLUMN started_by_name text;
ALTER TABLE app.plan_approvals
    ADD COLUMN key_id text, ADD COLUMN key_name text, ADD COLUMN client_addr text;

-- One row per distinct approver of one decided plan; the gate opens at the recipe's
-- requiredApprovals-th row. 'anonymous' is the principal while auth is off.
CREATE TABLE app.plan_approval_votes (
    run_id       text NOT NULL REFERENCES app.runs(id),
    plan_sha256  text NOT NULL CHECK (plan_sha256 ~ '^[0-9a-f]{64}$'),
    tasks_sha256 text NOT NULL CHECK (tasks_sha256 ~ '^[0-9a-f]{64}$'),
    principal    text NOT NULL,
    key_name     text,
    approved_by  text NOT NULL,
    notes        text,
    client_addr  text,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, plan_sha256, tasks_sha256, principal)
);

CREATE TABLE app.audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    principal      text NOT NULL,
    principal_name text,
    action         text NOT NULL,
    target         text,
    status         integer NOT NULL,
    code           text,
    request_id     text NOT NULL,
    client_addr    text
);
CREATE INDEX audit_log_target_idx ON app.audit_log (target, id);
CREATE INDEX audit_log_principal_idx ON app.audit_log (principal, id);

CREATE FUNCTION app.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'app.audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON app.audit_log
    FOR EACH ROW EXECUTE FUNCTION app.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON app.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_append_only();
"""


def upgrade() -> None:
    op.execute(DDL)
