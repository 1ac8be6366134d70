"""Routes: /webhooks (admin, operator): signed webhook subscriptions of the key's tenants,
and /runs/{id}/deliveries: every delivery attempt of a run's notifications."""

from __future__ import annotations

from fastapi import APIRouter, status

from sisu_kodo.api import service
from sisu_kodo.api.deps import ReaderDep, StateDep, WebhookAdminDep, audited_unit
from sisu_kodo.api.errors import error_responses
from sisu_kodo.api.paths import IdPath
from sisu_kodo.contracts.webhooks import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookView,
)
from sisu_kodo.notify import subscriptions

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(400, 401, 403),
)
def create_webhook(body: WebhookCreate, state: StateDep, caller: WebhookAdminDep) -> WebhookCreated:
    """Subscribe a tenant's URL to run events; `secret` (whsec_...) is shown only here."""
    with audited_unit(state, caller, status=201) as unit:
        created = subscriptions.subscribe(unit.conn, body, caller.principal, state.settings.notify)
        caller.target = created.id
        return created


@router.get("/webhooks", response_model=WebhookList, responses=error_responses(401, 403))
def list_webhooks(state: StateDep, caller: WebhookAdminDep) -> WebhookList:
    """The subscriptions of the key's tenants, without secrets."""
    with state.engine.connect() as conn:
        return WebhookList(webhooks=subscriptions.visible(conn, caller.principal))


@router.delete(
    "/webhooks/{webhook_id}", response_model=WebhookView, responses=error_responses(401, 403, 404)
)
def delete_webhook(webhook_id: IdPath, state: StateDep, caller: WebhookAdminDep) -> WebhookView:
    """Delete a subscription; its pending deliveries give up, its history stays."""
    with audited_unit(state, caller, status=200) as unit:
        return subscriptions.unsubscribe(
            unit.conn, webhook_id=webhook_id, principal=caller.principal
        )


@router.get(
    "/runs/{run_id}/deliveries",
    response_model=DeliveryList,
    responses=error_responses(400, 401, 403, 404),
)
def list_deliveries(run_id: IdPath, state: StateDep, caller: ReaderDep) -> DeliveryList:
    """Every webhook delivery attempt of the run's events (status code, latency, error)."""
    with state.engine.connect() as conn:
        service.require_visible_run(conn, caller.principal, run_id=run_id)
        return DeliveryList(runId=run_id, deliveries=subscriptions.deliveries(conn, run_id=run_id))
