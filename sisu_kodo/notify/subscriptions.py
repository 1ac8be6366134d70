"""Webhook subscriptions as the API offers them: per tenant, the secret shown once."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from sisu_kodo.auth import Principal
from sisu_kodo.config import NotifySettings
from sisu_kodo.contracts.webhooks import (
    DeliveryView,
    WebhookCreate,
    WebhookCreated,
    WebhookView,
)
from sisu_kodo.db import webhooks
from sisu_kodo.errors import ForbiddenError, InvalidRequestError, NotFoundError
from sisu_kodo.notify.signing import new_secret
from sisu_kodo.notify.ssrf import check_url


def subscribe(
    conn: sa.Connection, body: WebhookCreate, principal: Principal, settings: NotifySettings
) -> WebhookCreated:
    """Validate everything, then write the subscription.

    Raises:
        InvalidRequestError: no tenant named by a key that holds several.
        WebhookUrlRefusedError: the SSRF guard refuses the URL.
        ForbiddenError: the key does not hold the tenant.
    """
    tenant = body.tenant or principal.sole_tenant
    if tenant is None:
        raise InvalidRequestError(
            "tenant is required: this key acts in several tenants",
            [{"path": "tenant", "message": "name the tenant the subscription belongs to"}],
        )
    check_url(body.url, settings)
    if not principal.sees(tenant):
        raise ForbiddenError(
            f"key {principal.id} may not subscribe tenant {tenant!r}", {"tenant": tenant}
        )
    secret = new_secret()
    row = webhooks.create_subscription(
        conn,
        subscription_id=f"wh_{uuid.uuid4().hex}",
        tenant=tenant,
        url=body.url,
        events=sorted({event.value for event in body.events}),
        secret=secret,
        created_by=principal.id,
    )
    return WebhookCreated(**view(row).model_dump(), secret=secret)


def view(row: webhooks.SubscriptionRow) -> WebhookView:
    return WebhookView(
        id=row.id,
        tenant=row.tenant,
        url=row.url,
        events=row.events,
        createdBy=row.created_by,
        createdAt=row.created_at.isoformat(),
    )


def visible(conn: sa.Connection, principal: Principal) -> list[WebhookView]:
    tenants = None if principal.every_tenant else principal.tenants
    return [view(row) for row in webhooks.list_subscriptions(conn, tenants=tenants)]


def unsubscribe(conn: sa.Connection, *, webhook_id: str, principal: Principal) -> WebhookView:
    """Delete a subscription of the key's tenants (another tenant's is a 404); deleting
    twice keeps the first time, as revoking a key does."""
    row = webhooks.read_subscription(conn, subscription_id=webhook_id)
    if row is None or not principal.sees(row.tenant):
        raise NotFoundError(f"webhook {webhook_id} not found", {"webhookId": webhook_id})
    webhooks.delete_subscription(conn, subscription_id=webhook_id)
    return view(row)


def deliveries(conn: sa.Connection, *, run_id: str) -> list[DeliveryView]:
    return [
        DeliveryView(
            webhookId=row.message_id,
            subscriptionId=row.subscription_id,
            eventType=row.event_type,
            attempt=row.attempt,
            url=row.url,
            statusCode=row.status_code,
            latencyMs=row.latency_ms,
            error=row.error,
            attemptedAt=row.attempted_at.isoformat(),
            messageStatus=row.message_status,
        )
        for row in webhooks.list_deliveries(conn, run_id=run_id)
    ]
