"""The shim's only door to DBOS: enqueue by workflow name through `DBOSClient`.

When the ledger and DBOS's system tables share a database (the default), the enqueue
joins the caller's transaction (a transactional outbox): the run row and its workflow
appear together or not at all. With a separate system database the enqueue follows
the commit, and repeating the same start re-enqueues idempotently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions

from sisu_kodo.config import APP_NAME, Settings
from sisu_kodo.workflows.names import INTENT_QUEUE


@dataclass(frozen=True)
class Enqueue:
    workflow_name: str
    workflow_id: str
    partition_key: str
    args: tuple[Any, ...]


@dataclass
class UnitOfWork:
    conn: sa.Connection
    atomic: bool
    pending: list[Enqueue] = field(default_factory=list)

    after_commit: list[Callable[[DBOSClient], None]] = field(default_factory=list)

    def enqueue(self, item: Enqueue) -> None:
        self.pending.append(item)

    def then(self, action: Callable[[DBOSClient], None]) -> None:
        """Run a DBOS management call (e.g. cancel) once the transaction has committed."""
        self.after_commit.append(action)

    def heal(self, item: Enqueue) -> None:
        """Re-enqueue on a replayed request; only a non-atomic enqueue can have been lost."""
        if not self.atomic:
            self.pending.append(item)


class WorkflowGateway:
    def __init__(self, settings: Settings, *, system_url: str, atomic: bool) -> None:
        self._settings = settings
        self.atomic = atomic
        self.client = DBOSClient(system_database_url=system_url, application_name=APP_NAME)

    @contextmanager
    def unit_of_work(self, engine: sa.Engine) -> Iterator[UnitOfWork]:
        """A transaction whose enqueues commit with it (or right after it)."""
        with engine.begin() as conn:
            unit = UnitOfWork(conn, self.atomic)
            yield unit
            if self.atomic:
                for item in unit.pending:
                    self.client.enqueue_in_transaction(conn, self._options(item), *item.args)
        if not self.atomic:
            for item in unit.pending:
                self.client.enqueue(self._options(item), *item.args)
        for action in unit.after_commit:
            action(self.client)

    def _options(self, item: Enqueue) -> EnqueueOptions:
        return {
            "workflow_name": item.workflow_name,
            "queue_name": INTENT_QUEUE,
            "workflow_id": item.workflow_id,
            "queue_partition_key": item.partition_key,
            "app_version": self._settings.topology.app_version,
        }

    def close(self) -> None:
        self.client.destroy()
