"""The executor lease on a real PostgreSQL: a requested id held for a moment (a recovery
sweep taking over its workflows) is waited for; one held for good is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sisu_kodo.config import ConfigError
from sisu_kodo.db.engine import create_engine
from sisu_kodo.worker.identity import SWEEP_HOLD_SECONDS, ExecutorLease
from tests.fixtures.postgres import TestDatabases

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(databases: TestDatabases) -> Iterator[sa.Engine]:
    engine = create_engine(databases.create(), pool_size=4)
    yield engine
    engine.dispose()


def test_a_restart_waits_for_a_sweep_holding_its_id(engine: sa.Engine) -> None:
    sweep = ExecutorLease(engine)
    assert sweep.try_hold("worker-b")
    threading.Timer(SWEEP_HOLD_SECONDS / 5, sweep.release).start()
    restarted = ExecutorLease(engine)
    try:
        assert restarted.acquire(requested="worker-b", prefix="host-worker") == "worker-b"
        assert not ExecutorLease(engine).try_hold("worker-b"), "the restarted worker holds it"
    finally:
        restarted.release()


def test_an_id_a_live_worker_holds_is_refused(engine: sa.Engine) -> None:
    live = ExecutorLease(engine)
    assert live.acquire(requested="worker-a", prefix="host-worker") == "worker-a"
    try:
        with pytest.raises(ConfigError, match="already holds it"):
            ExecutorLease(engine).acquire(requested="worker-a", prefix="host-worker")
    finally:
        live.release()
    # Released with its holder's session, which the server ends a moment after the client
    # closes it: the next acquire waits that moment out.
    after = ExecutorLease(engine)
    assert after.acquire(requested="worker-a", prefix="host-worker") == "worker-a"
    after.release()
