"""Session fixtures: one PostgreSQL server, one shared worker + API stack, and factories
for tests that need a stack of their own (crash tests kill its worker); the tiers' markers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sisu_kodo.client import SisuClient
from sisu_kodo.db.engine import create_engine
from tests.fixtures.postgres import TestDatabases, server_url
from tests.fixtures.processes import Stack, running

TESTS = Path(__file__).resolve().parent
# Every test in these directories starts a real server or sandbox.
DIRECTORY_MARKERS = {TESTS / "oc": "opencode", TESTS / "sbx": "sandbox"}
# Markers of the full tier only: each implies `integration`, which the quick tier excludes.
FULL_TIER_MARKERS = ("opencode", "sandbox", "browser")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for directory, marker in DIRECTORY_MARKERS.items():
            if item.path.is_relative_to(directory):
                item.add_marker(marker)
        if any(item.get_closest_marker(marker) for marker in FULL_TIER_MARKERS):
            item.add_marker("integration")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """A selection that runs nothing is a broken tier, not a pass: say so where it shows."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        terminalreporter.write_line(
            "ERROR: no tests were selected; a tier that runs nothing is a failure (exit code 5)",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    yield from server_url()


@pytest.fixture(scope="session")
def databases(pg_admin_url: str) -> Iterator[TestDatabases]:
    dbs = TestDatabases(pg_admin_url)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def stack(databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A worker and an API shim as separate processes, shared by the session."""
    with running(Stack(databases.create(), tmp_path_factory.mktemp("stack"))) as shared:
        yield shared


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[SisuClient]:
    with SisuClient(stack.base_url) as api:
        yield api


@pytest.fixture(scope="session")
def db(stack: Stack) -> Iterator[sa.Engine]:
    engine = create_engine(stack.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def make_stack(databases: TestDatabases, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build a stack on a fresh database; started roles are stopped after the test."""
    made: list[Stack] = []

    def factory(**extra_env: str) -> Stack:
        new = Stack(databases.create(), tmp_path / f"stack{len(made)}", extra_env=extra_env)
        made.append(new)
        return new

    yield factory
    for each in made:
        each.stop()
