"""A fresh, migrated database per module for in-process service tests (no processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.db.bootstrap import prepare_databases
from sisu_kodo.db.engine import create_engine
from tests.fixtures.postgres import TestDatabases


@pytest.fixture(scope="module")
def ledger(databases: TestDatabases) -> Iterator[sa.Engine]:
    url = databases.create()
    engine = create_engine(url, pool_size=2)
    prepare_databases(engine, url)
    yield engine
    engine.dispose()
