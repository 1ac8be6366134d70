"""The worker's collaborators, bound once before DBOS launches.

Steps reach the database, the planner and the sandbox provider only through
`current()`, so the worker entry point is the one place that decides what they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from dbos import SQLAlchemyDatasource

from sisu_kodo.config import Settings
from sisu_kodo.oc.port import Planner
from sisu_kodo.sbx.port import SandboxProvider


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: sa.Engine
    datasource: SQLAlchemyDatasource
    planner: Planner
    sandbox: SandboxProvider


_runtime: Runtime | None = None


def bind(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workflow runtime not bound; start workflows through `sisu worker`")
    return _runtime
