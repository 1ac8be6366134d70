"""Database preparation shared by every process: ledger migrations and DBOS's system schema."""

from __future__ import annotations

import sqlalchemy as sa
from dbos import DBOS

from sisu_kodo.db import migrate


def prepare_databases(engine: sa.Engine, system_url: str) -> None:
    """Migrate schema `app` and DBOS's system schema (both idempotent and locked)."""
    migrate.upgrade(engine)
    DBOS.migrate(system_url)
