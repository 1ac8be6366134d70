"""Queue registration (DBOS 3.x queues are database rows, registered after launch)."""

from __future__ import annotations

from dbos import DBOS

from sisu_kodo.config import Settings
from sisu_kodo.workflows.names import INTENT_QUEUE, SBX_QUEUE, WEBHOOK_QUEUE


def register_queues(settings: Settings) -> None:
    DBOS.register_queue(
        INTENT_QUEUE,
        partition_concurrency=settings.queues.intent_partition_concurrency,
        worker_concurrency=settings.queues.intent_worker_concurrency,
        polling_interval_sec=settings.queues.queue_poll_seconds,
        on_conflict="always_update",
    )
    DBOS.register_queue(
        SBX_QUEUE,
        partition_concurrency=settings.queues.sbx_partition_concurrency,
        worker_concurrency=settings.queues.sbx_worker_concurrency,
        polling_interval_sec=settings.queues.queue_poll_seconds,
        on_conflict="always_update",
    )
    # Deliveries wait on receivers, not on sandboxes: their own queue, so a receiver that
    # is down never holds a run's slot.
    DBOS.register_queue(
        WEBHOOK_QUEUE,
        worker_concurrency=settings.notify.concurrency,
        polling_interval_sec=settings.queues.queue_poll_seconds,
        on_conflict="always_update",
    )
