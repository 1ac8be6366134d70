"""The webhook delivery workflow: one per message (webhook-id x subscription).

Each attempt is one DBOS step that POSTs the signed message and records the attempt in
app.webhook_deliveries; between attempts the workflow sleeps durably (DBOS.sleep), with
exponential back-off, until the receiver answers 2xx or SISU_WEBHOOK_RETRY_FOR_SECONDS
have passed since the event. A worker killed mid-attempt re-runs that attempt after
recovery under the same webhook-id, so a receiver may see a message twice but never
two ids for one event: receivers deduplicate on webhook-id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from dbos import DBOS
from pydantic import BaseModel

from sisu_kodo.canonical import canonical_json
from sisu_kodo.config import NotifySettings
from sisu_kodo.db import webhooks
from sisu_kodo.errors import WebhookUrlRefusedError
from sisu_kodo.notify.signing import signed_headers
from sisu_kodo.notify.ssrf import check_resolved
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.names import WEBHOOK_WORKFLOW

DELIVERED, GAVE_UP = "delivered", "gave_up"
ERROR_CHARS = 500


class AttemptOutcome(BaseModel):
    """What one attempt step tells the workflow (never the secret or the body)."""

    final: str | None  # delivered or gave_up; None: try again
    retry_in: float = 0.0


@DBOS.workflow(name=WEBHOOK_WORKFLOW)
def webhook_delivery_workflow(message_id: str, subscription_id: str) -> str:
    attempt = 0
    while True:
        attempt += 1
        outcome: AttemptOutcome = DBOS.run_step(
            {"name": "deliver_webhook"}, _attempt, message_id, subscription_id, attempt
        )
        if outcome.final is not None:
            return outcome.final
        DBOS.sleep(outcome.retry_in)


def backoff(settings: NotifySettings, attempt: int) -> float:
    """The wait after the `attempt`-th failure: doubled each time, capped."""
    return float(
        min(
            settings.retry_initial_seconds * 2 ** (attempt - 1), settings.retry_max_interval_seconds
        )
    )


def _attempt(message_id: str, subscription_id: str, attempt: int) -> AttemptOutcome:
    rt = runtime.current()
    settings = rt.settings.notify
    with rt.engine.connect() as conn:
        message = webhooks.read_message(
            conn, message_id=message_id, subscription_id=subscription_id
        )
    if message is None:  # enqueued ahead of its (separate-database) commit
        return AttemptOutcome(final=None, retry_in=backoff(settings, attempt))
    if message.status != "pending":
        return AttemptOutcome(final=message.status)
    age = (datetime.now(UTC) - message.created_at).total_seconds()
    if message.deleted or age > settings.retry_for_seconds:
        _finish(message, GAVE_UP)
        return AttemptOutcome(final=GAVE_UP)
    status_code, latency_ms, error = _post(message, settings)
    with rt.engine.begin() as conn:
        webhooks.record_attempt(
            conn, message=message, status_code=status_code, latency_ms=latency_ms, error=error
        )
        if status_code is not None and 200 <= status_code < 300:
            webhooks.finish_message(
                conn, message_id=message.id, subscription_id=subscription_id, status=DELIVERED
            )
            return AttemptOutcome(final=DELIVERED)
    wait = backoff(settings, attempt)
    remaining = settings.retry_for_seconds - age
    if remaining <= 0:
        _finish(message, GAVE_UP)
        return AttemptOutcome(final=GAVE_UP)
    return AttemptOutcome(final=None, retry_in=min(wait, remaining))


def _finish(message: webhooks.MessageRow, status: str) -> None:
    with runtime.current().engine.begin() as conn:
        webhooks.finish_message(
            conn, message_id=message.id, subscription_id=message.subscription_id, status=status
        )


def _post(
    message: webhooks.MessageRow, settings: NotifySettings
) -> tuple[int | None, int | None, str | None]:
    """POST the signed message: (status code, latency, error), never raising."""
    body = canonical_json(message.payload)
    headers = signed_headers(message.secret, webhook_id=message.id, at=datetime.now(UTC), body=body)
    started = time.monotonic()
    try:
        check_resolved(message.url, settings)
        # No redirects: a 3xx could point anywhere, past the SSRF guard.
        response = httpx.post(
            message.url,
            content=body.encode(),
            headers=headers,
            timeout=settings.timeout_seconds,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the guard checked this host
        )
    except (httpx.HTTPError, WebhookUrlRefusedError) as exc:
        latency = int((time.monotonic() - started) * 1000)
        return None, latency, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    latency = int((time.monotonic() - started) * 1000)
    error = None if response.is_success else f"HTTP {response.status_code}"
    return response.status_code, latency, error
