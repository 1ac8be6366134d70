"""Webhook bodies: subscriptions, the events they may name, and delivery attempts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sisu_kodo.contracts.text import Text


class WebhookEvent(StrEnum):
    RUN_WAITING_INPUT = "run.waiting_input"
    GATE_EXPIRING = "gate.expiring"
    RUN_APPROVED = "run.approved"
    RUN_REJECTED = "run.rejected"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_RETRIES_EXCEEDED = "run.retries_exceeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELED = "run.canceled"


# The run events (app.run_events.type) that are notified, and as which webhook event.
NOTIFIED_RUN_EVENTS: dict[str, WebhookEvent] = {
    "gate.opened": WebhookEvent.RUN_WAITING_INPUT,
    "gate.canary_parked": WebhookEvent.RUN_WAITING_INPUT,
    "gate.expiring": WebhookEvent.GATE_EXPIRING,
    "plan.approved": WebhookEvent.RUN_APPROVED,
    "plan.rejected": WebhookEvent.RUN_REJECTED,
    "run.succeeded": WebhookEvent.RUN_SUCCEEDED,
    "run.retries_exceeded": WebhookEvent.RUN_RETRIES_EXCEEDED,
    "run.failed": WebhookEvent.RUN_FAILED,
    "run.canceled": WebhookEvent.RUN_CANCELED,
}


class WebhookCreate(BaseModel):
    """Body of POST /webhooks."""

    model_config = ConfigDict(extra="forbid")

    url: Text = Field(min_length=1, max_length=2000)
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WebhookEvent))
    # Needed only by a key that holds several tenants (or all); a sole-tenant key's own.
    tenant: Text | None = Field(None, min_length=1, max_length=200, pattern=r"\S")


class WebhookView(BaseModel):
    id: str
    tenant: str
    url: str
    events: list[str]
    createdBy: str
    createdAt: str


class WebhookCreated(WebhookView):
    """The answer of POST /webhooks: the only time the signing secret is shown."""

    secret: str


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class DeliveryView(BaseModel):
    """One HTTP attempt of one message (webhook-id) to one subscription."""

    webhookId: str
    subscriptionId: str
    eventType: str
    attempt: int
    url: str
    statusCode: int | None
    latencyMs: int | None
    error: str | None
    attemptedAt: str
    messageStatus: str


class DeliveryList(BaseModel):
    runId: str
    deliveries: list[DeliveryView]


class WebhookPayload(BaseModel):
    """The JSON body a receiver gets (signed per Standard Webhooks)."""

    type: str
    timestamp: str
    data: dict[str, Any]
