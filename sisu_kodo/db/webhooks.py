"""Webhooks: subscriptions per tenant, the outbox of notified run events, messages (one
per event and subscription) and every delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    tenant: str
    url: str
    events: list[str]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    run_id: str
    seq: int
    event_type: str
    run_event: str  # app.run_events.type
    at: datetime
    status: str
    step_id: str | None
    detail: dict[str, Any]
    tenant: str
    next_action: str


@dataclass(frozen=True)
class MessageRow:
    id: str
    subscription_id: str
    run_id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    created_at: datetime
    url: str
    secret: str
    deleted: bool


@dataclass(frozen=True)
class DeliveryRow:
    message_id: str
    subscription_id: str
    event_type: str
    attempt: int
    url: str
    status_code: int | None
    latency_ms: int | None
    error: str | None
    attempted_at: datetime
    message_status: str


_SUBSCRIPTION_COLUMNS = "id, tenant, url, events, created_by, created_at"


def create_subscription(
    conn: sa.Connection,
    *,
    subscription_id: str,
    tenant: str,
    url: str,
    events: list[str],
    secret: str,
    created_by: str,
) -> SubscriptionRow:
    row = conn.execute(
        sa.text(
            f"""
            INSERT INTO app.webhook_subscriptions (id, tenant, url, events, secret, created_by)
            VALUES (:id, :tenant, :url, :events, :secret, :created_by)
            RETURNING {_SUBSCRIPTION_COLUMNS}
            """
        ),
        {
            "id": subscription_id,
            "tenant": tenant,
            "url": url,
            "events": events,
            "secret": secret,
            "created_by": created_by,
        },
    ).one()
    return SubscriptionRow(*row)


def list_subscriptions(
    conn: sa.Connection, *, tenants: frozenset[str] | None
) -> list[SubscriptionRow]:
    """Live subscriptions of `tenants` (None: every tenant), oldest first."""
    rows = conn.execute(
        sa.text(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM app.webhook_subscriptions"
            " WHERE deleted_at IS NULL AND (CAST(:all AS boolean) OR tenant = ANY(:tenants))"
            " ORDER BY created_at, id"
        ),
        {"all": tenants is None, "tenants": sorted(tenants or ())},
    )
    return [SubscriptionRow(*row) for row in rows]


def read_subscription(conn: sa.Connection, *, subscription_id: str) -> SubscriptionRow | None:
    """A subscription, deleted or not."""
    row = conn.execute(
        sa.text(f"SELECT {_SUBSCRIPTION_COLUMNS} FROM app.webhook_subscriptions WHERE id = :id"),
        {"id": subscription_id},
    ).one_or_none()
    return SubscriptionRow(*row) if row else None


def delete_subscription(conn: sa.Connection, *, subscription_id: str) -> None:
    """Soft delete: its messages and attempts stay auditable; pending ones give up."""
    conn.execute(
        sa.text(
            "UPDATE app.webhook_subscriptions SET deleted_at = now()"
            " WHERE id = :id AND deleted_at IS NULL"
        ),
        {"id": subscription_id},
    )


def pending_outbox(conn: sa.Connection, *, limit: int) -> list[OutboxItem]:
    """Notified run events not yet dispatched, oldest first, locked for this dispatcher."""
    rows = conn.execute(
        sa.text(
            """
            SELECT o.run_id, o.seq, o.event_type, e.type, e.at, e.status, e.step_id, e.detail,
                   r.queue_partition_key, r.next_action
              FROM app.webhook_outbox o
              JOIN app.run_events e ON e.run_id = o.run_id AND e.seq = o.seq
              JOIN app.runs r ON r.id = o.run_id
             WHERE o.dispatched_at IS NULL
             ORDER BY o.created_at, o.run_id, o.seq
             LIMIT :limit
               FOR UPDATE OF o SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return [OutboxItem(*row) for row in rows]


def subscribers(conn: sa.Connection, *, tenant: str, event_type: str) -> list[str]:
    return list(
        conn.execute(
            sa.text(
                "SELECT id FROM app.webhook_subscriptions WHERE deleted_at IS NULL"
                " AND tenant = :tenant AND :event_type = ANY(events) ORDER BY id"
            ),
            {"tenant": tenant, "event_type": event_type},
        ).scalars()
    )


def create_message(
    conn: sa.Connection,
    *,
    message_id: str,
    subscription_id: str,
    run_id: str,
    seq: int,
    event_type: str,
    payload: dict[str, Any],
) -> None:
    conn.execute(
        sa.text(
            """
            INSERT INTO app.webhook_messages (id, subscription_id, run_id, seq, event_type,
                                              payload)
            VALUES (:id, :subscription_id, :run_id, :seq, :event_type, :payload)
            ON CONFLICT (id, subscription_id) DO NOTHING
            """
        ).bindparams(sa.bindparam("payload", type_=JSONB)),
        {
            "id": message_id,
            "subscription_id": subscription_id,
            "run_id": run_id,
            "seq": seq,
            "event_type": event_type,
            "payload": payload,
        },
    )


def mark_dispatched(conn: sa.Connection, *, run_id: str, seq: int) -> None:
    conn.execute(
        sa.text(
            "UPDATE app.webhook_outbox SET dispatched_at = now()"
            " WHERE run_id = :run_id AND seq = :seq"
        ),
        {"run_id": run_id, "seq": seq},
    )


def read_message(
    conn: sa.Connection, *, message_id: str, subscription_id: str
) -> MessageRow | None:
    """A message with its subscription's URL and secret (the secret is read only here)."""
    row = conn.execute(
        sa.text(
            """
            SELECT m.id, m.subscription_id, m.run_id, m.event_type, m.payload, m.status,
                   m.created_at, s.url, s.secret, s.deleted_at IS NOT NULL
              FROM app.webhook_messages m
              JOIN app.webhook_subscriptions s ON s.id = m.subscription_id
             WHERE m.id = :id AND m.subscription_id = :subscription_id
            """
        ),
        {"id": message_id, "subscription_id": subscription_id},
    ).one_or_none()
    return MessageRow(*row) if row else None


def record_attempt(
    conn: sa.Connection,
    *,
    message: MessageRow,
    status_code: int | None,
    latency_ms: int | None,
    error: str | None,
) -> int:
    """Append the message's next attempt (numbered in SQL: a re-run step adds one more)."""
    attempt = conn.execute(
        sa.text(
            """
            INSERT INTO app.webhook_deliveries (message_id, subscription_id, attempt, run_id,
                event_type, url, status_code, latency_ms, error)
            SELECT :message_id, :subscription_id, COALESCE(MAX(attempt), 0) + 1, :run_id,
                   :event_type, :url, :status_code, :latency_ms, :error
              FROM app.webhook_deliveries
             WHERE message_id = :message_id AND subscription_id = :subscription_id
            RETURNING attempt
            """
        ),
        {
            "message_id": message.id,
            "subscription_id": message.subscription_id,
            "run_id": message.run_id,
            "event_type": message.event_type,
            "url": message.url,
            "status_code": status_code,
            "latency_ms": latency_ms,
            "error": error,
        },
    ).scalar_one()
    return int(attempt)


def finish_message(
    conn: sa.Connection, *, message_id: str, subscription_id: str, status: str
) -> None:
    conn.execute(
        sa.text(
            "UPDATE app.webhook_messages SET status = :status, finished_at = now()"
            " WHERE id = :id AND subscription_id = :subscription_id AND status = 'pending'"
        ),
        {"id": message_id, "subscription_id": subscription_id, "status": status},
    )


def list_deliveries(conn: sa.Connection, *, run_id: str) -> list[DeliveryRow]:
    rows = conn.execute(
        sa.text(
            """
            SELECT d.message_id, d.subscription_id, d.event_type, d.attempt, d.url,
                   d.status_code, d.latency_ms, d.error, d.attempted_at, m.status
              FROM app.webhook_deliveries d
              JOIN app.webhook_messages m
                ON m.id = d.message_id AND m.subscription_id = d.subscription_id
             WHERE d.run_id = :run_id
             ORDER BY d.attempted_at, d.message_id, d.attempt
            """
        ),
        {"run_id": run_id},
    )
    return [DeliveryRow(*row) for row in rows]
