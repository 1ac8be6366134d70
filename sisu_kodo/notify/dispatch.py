"""The webhook dispatcher: notified run events (the outbox) become messages, one per
matching subscription, each delivered by its own DBOS workflow on webhookQ.

Every worker runs one (SISU_WEBHOOK_DISPATCH_SECONDS). Outbox rows are locked with SKIP
LOCKED, so two dispatchers never take the same event; the delivery workflow's id is the
message's (webhook-<webhook-id>-<subscription>), so enqueuing again after a crash
re-attaches to the workflow already there. With the ledger and DBOS in one database the
enqueue commits with the messages (a transactional outbox).
"""

from __future__ import annotations

import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions

from sisu_kodo.canonical import sha256_hex
from sisu_kodo.config import Settings
from sisu_kodo.contracts.webhooks import WebhookEvent
from sisu_kodo.db import webhooks
from sisu_kodo.worker.periodic import Periodic
from sisu_kodo.workflows.names import WEBHOOK_QUEUE, WEBHOOK_WORKFLOW, webhook_workflow_id

BATCH = 200


def webhook_id(run_id: str, seq: int) -> str:
    """The event's one stable webhook-id: the same on every attempt and every receiver."""
    return "msg_" + sha256_hex(f"{run_id}:{seq}")[:32]


def message_payload(item: webhooks.OutboxItem, console_url: str | None) -> dict[str, object]:
    data: dict[str, object] = {
        "runId": item.run_id,
        "tenant": item.tenant,
        "status": item.status,
        "event": item.run_event,
        "seq": item.seq,
        "stepId": item.step_id,
        "detail": item.detail,
    }
    if item.event_type == WebhookEvent.RUN_WAITING_INPUT and console_url:
        data["runUrl"] = f"{console_url}/runs/{item.run_id}"
    return {"type": item.event_type, "timestamp": item.at.isoformat(), "data": data}


def dispatch(engine: sa.Engine, client: DBOSClient, settings: Settings, *, atomic: bool) -> int:
    """One pass over the outbox; returns how many delivery workflows it enqueued."""
    enqueued: list[tuple[str, str]] = []
    with engine.begin() as conn:
        for item in webhooks.pending_outbox(conn, limit=BATCH):
            message_id = webhook_id(item.run_id, item.seq)
            payload = message_payload(item, settings.notify.console_url)
            for subscription_id in webhooks.subscribers(
                conn, tenant=item.tenant, event_type=item.event_type
            ):
                webhooks.create_message(
                    conn,
                    message_id=message_id,
                    subscription_id=subscription_id,
                    run_id=item.run_id,
                    seq=item.seq,
                    event_type=item.event_type,
                    payload=payload,
                )
                enqueued.append((message_id, subscription_id))
            webhooks.mark_dispatched(conn, run_id=item.run_id, seq=item.seq)
        if atomic:
            for message_id, subscription_id in enqueued:
                client.enqueue_in_transaction(
                    conn,
                    _options(settings, message_id, subscription_id),
                    message_id,
                    subscription_id,
                )
        else:
            # Before the commit: a crash in between re-dispatches the events, and the
            # same workflow ids re-attach (the workflow waits for its message to commit).
            for message_id, subscription_id in enqueued:
                client.enqueue(
                    _options(settings, message_id, subscription_id), message_id, subscription_id
                )
    return len(enqueued)


def _options(settings: Settings, message_id: str, subscription_id: str) -> EnqueueOptions:
    return {
        "workflow_name": WEBHOOK_WORKFLOW,
        "queue_name": WEBHOOK_QUEUE,
        "workflow_id": webhook_workflow_id(message_id, subscription_id),
        "app_version": settings.topology.app_version,
    }


class WebhookDispatcher(Periodic):
    def __init__(
        self, engine: sa.Engine, client: DBOSClient, settings: Settings, *, atomic: bool
    ) -> None:
        super().__init__(
            "sisu-webhook-dispatch",
            lambda: dispatch(engine, client, settings, atomic=atomic),
            period=settings.notify.dispatch_seconds,
        )
