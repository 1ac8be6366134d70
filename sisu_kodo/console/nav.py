"""The layout's navigation: where the visitor is, and the approvals badge of every page."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from sisu_kodo.api import ops
from sisu_kodo.auth import Principal
from sisu_kodo.contracts.ops import RunQuery
from sisu_kodo.contracts.runs import RunStatus

WAITING = RunQuery(status=[RunStatus.WAITING_INPUT])


@dataclass(frozen=True)
class Nav:
    here: str
    waiting: int  # runs at the approval gate the visitor may see


def nav_of(conn: sa.Connection, principal: Principal, here: str) -> Nav:
    counts = ops.count_runs(conn, principal, WAITING)
    return Nav(here, counts.statuses.get(RunStatus.WAITING_INPUT, 0))
