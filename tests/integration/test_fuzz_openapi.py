"""Schema-driven fuzzing of the OpenAPI contract (schemathesis + hypothesis).

Every generated request, valid or not, must get a documented answer, never a 500, and a
4xx must leave the ledger (and DBOS's workflow table) exactly as it was. The API runs
without a worker so that nothing changes in the background between requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from sisu_kodo.db.engine import create_engine
from tests.fixtures.processes import Stack
from tests.fixtures.runs import ledger_counts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_only(
    databases: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, sa.Engine]]:
    from tests.fixtures.postgres import TestDatabases

    assert isinstance(databases, TestDatabases)
    stack = Stack(databases.create(), tmp_path_factory.mktemp("fuzz"))
    stack.start_api()
    engine = create_engine(stack.database_url, pool_size=1)
    try:
        yield stack, engine
    finally:
        stack.stop()
        engine.dispose()


def test_no_500_and_no_write_on_4xx(api_only: tuple[Stack, sa.Engine]) -> None:
    stack, engine = api_only
    api_schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    operations = [_valid(result) for result in api_schema.get_all_operations()]
    assert len(operations) >= 10, "every route of the contract is fuzzed"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            before = ledger_counts(engine)
            response = case.call(base_url=stack.base_url, timeout=10)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if 400 <= response.status_code < 500:
                body = response.json()
                assert body["code"] and body["message"], where
                assert ledger_counts(engine) == before, f"{where} answered 4xx but wrote"
            case.validate_response(response, checks=_CONFORMANCE)

        check()


_CONFORMANCE: list[schemathesis.CheckFunction] = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


Operation = APIOperation[Any, Any, Any, Any]


def _valid(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """The operation, or the schema error that makes it unfuzzable (a test failure)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()
