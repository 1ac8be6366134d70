"""Stuck runs: non-terminal runs that no workflow of theirs will ever move again.

A queued or running run is moved only by its current workflow (the plan or execute
workflow of its retry round). When DBOS holds that workflow as ERROR, CANCELLED or
MAX_RECOVERY_ATTEMPTS_EXCEEDED, or holds none of the round's workflows live at all,
nothing will move the run: it is stuck. The worker's watchdog fails such runs and
`sisu doctor` lists them; both read them through `scan_stuck_runs`.

A run waiting at the gate is never stuck: its plan workflow ended when the gate opened
by design. A run is looked at only once its row has been still for the grace period,
which covers the moment between a status change and its workflow's enqueue when the
ledger and DBOS's tables live in separate databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from dbos import DBOSClient, WorkflowStatus

from sisu_kodo.contracts.runs import RunStatus
from sisu_kodo.workflows.names import canary_rest_workflow_id, round_workflow_ids

LIVE_STATUSES = frozenset({"ENQUEUED", "PENDING", "DELAYED"})
BROKEN_STATUSES = frozenset({"ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})
MISSING = "missing"
# Statuses a workflow of the run still moves; waiting_input has no workflow by design.
WATCHED_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class UnsettledRun:
    """The columns of a queued or running run that say whether it moved since read."""

    id: str
    status: RunStatus
    retry_count: int
    updated_at: datetime

    @property
    def current_workflow_ids(self) -> list[str]:
        """The workflows of the run's retry round, in the order they run."""
        return round_workflow_ids(self.id, self.retry_count)

    @property
    def optional_workflow_ids(self) -> frozenset[str]:
        """Round workflows only some runs have (the rest after a canary): judged only
        when DBOS holds them."""
        return frozenset({canary_rest_workflow_id(self.id, self.retry_count)})


@dataclass(frozen=True)
class StuckRun:
    run: UnsettledRun
    workflows: dict[str, str]  # the round's workflow ids: DBOS status, or MISSING
    broken: str | None  # the workflow that ended abnormally; None: none did, none is live

    @property
    def summary(self) -> str:
        """A few words: the broken workflow's DBOS status, or that none is live."""
        return self.workflows[self.broken] if self.broken else "no live workflow"

    def reason(self, dbos_error: str | None = None) -> str:
        """The run's error text: which workflow, its DBOS status and its error."""
        stuck = f"stuck {self.run.status.value}"
        if self.broken is None:
            listing = ", ".join(f"{wid} {status}" for wid, status in self.workflows.items())
            return f"{stuck}: no live workflow in DBOS ({listing})"
        error = f": {dbos_error}" if dbos_error else ""
        return f"{stuck}: workflow {self.broken} is {self.workflows[self.broken]} in DBOS{error}"


@dataclass(frozen=True)
class StuckScan:
    stuck: list[StuckRun]
    next_after: str | None  # the cursor of the next batch; None when the scan wrapped


def scan_stuck_runs(
    conn: sa.Connection,
    client: DBOSClient,
    *,
    grace_seconds: float,
    after: str = "",
    limit: int = 500,
) -> StuckScan:
    """One batch of the watched runs still for `grace_seconds`, after run id `after`.

    Two reads whatever the batch holds: one query of app.runs (by id, so successive
    batches walk every run) and one DBOS listing of their rounds' workflows, statuses only.
    """
    runs = list_unsettled_runs(conn, grace_seconds=grace_seconds, after=after, limit=limit)
    ids = [workflow_id for run in runs for workflow_id in run.current_workflow_ids]
    found = workflow_statuses(client, ids) if ids else {}
    statuses = {wid: workflow.status for wid, workflow in found.items()}
    stuck = [verdict for run in runs if (verdict := judge(run, statuses)) is not None]
    return StuckScan(stuck, runs[-1].id if len(runs) == limit else None)


def list_unsettled_runs(
    conn: sa.Connection, *, grace_seconds: float, after: str = "", limit: int = 500
) -> list[UnsettledRun]:
    """Queued or running runs whose row has not changed for `grace_seconds`, by id."""
    rows = conn.execute(
        sa.text(
            """
            SELECT id, status, retry_count, updated_at FROM app.runs
            WHERE status = ANY(:watched) AND id > :after
              AND updated_at < now() - make_interval(secs => :grace)
            ORDER BY id LIMIT :limit
            """
        ),
        {
            "watched": [status.value for status in WATCHED_STATUSES],
            "after": after,
            "grace": grace_seconds,
            "limit": limit,
        },
    ).all()
    return [UnsettledRun(row[0], RunStatus(row[1]), row[2], row[3]) for row in rows]


def workflow_statuses(
    client: DBOSClient, workflow_ids: list[str], *, with_errors: bool = False
) -> dict[str, WorkflowStatus]:
    """DBOS's view of these workflows, by id; errors only when asked (they are unpickled)."""
    found = client.list_workflows(
        workflow_ids=workflow_ids, load_input=False, load_output=with_errors
    )
    return {workflow.workflow_id: workflow for workflow in found}


def judge(run: UnsettledRun, statuses: Mapping[str, str]) -> StuckRun | None:
    """Stuck unless a workflow of the run's round is still live; `statuses` by workflow id."""
    seen = {
        wid: statuses.get(wid, MISSING)
        for wid in run.current_workflow_ids
        if wid in statuses or wid not in run.optional_workflow_ids
    }
    if any(status in LIVE_STATUSES for status in seen.values()):
        return None
    broken = [wid for wid, status in seen.items() if status in BROKEN_STATUSES]
    # The later phase is the one that broke; with none broken, the next never appeared.
    return StuckRun(run, seen, broken[-1] if broken else None)


def error_text(error: object) -> str | None:
    """A workflow's recorded error (`WorkflowStatus.error`) as one line."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def all_stuck_runs(
    conn: sa.Connection, client: DBOSClient, *, grace_seconds: float, batch: int = 500
) -> list[StuckRun]:
    """Every stuck run, batch after batch (`sisu doctor`; the watchdog takes one a sweep)."""
    found: list[StuckRun] = []
    after: str | None = ""
    while after is not None:
        scan = scan_stuck_runs(conn, client, grace_seconds=grace_seconds, after=after, limit=batch)
        found += scan.stuck
        after = scan.next_after
    return found
