"""Schema-driven fuzzing of the OpenAPI contract (schemathesis + hypothesis).

Every generated request, valid or not, must get a documented answer, never a 500, and a
4xx must leave the ledger (and DBOS's workflow table) exactly as it was. The API runs
without a worker so that nothing changes in the background between requests.

Schema-driven generation only writes what json.dumps can, so hostile generators splice in
what it cannot (NaN, Infinity, out-of-range numbers, lone surrogates, deep nesting), and
huge integers and strings into query parameters, headers and bodies: a future 500 on any
of them fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import bearer, make_key
from tests.fixtures.processes import Stack
from tests.fixtures.runs import ledger_counts

pytestmark = pytest.mark.integration


# The contract is fuzzed twice: with auth off (no key: fuzzing POST /keys must not switch
# auth on halfway), and with auth on, every request carrying an admin key. The hostile
# generators run once, with the key: the body guard refuses them before auth is looked
# at, so auth off would only repeat the same path, and the key takes them past auth too.
AUTH: dict[str, str] = {}
KEYED_ONLY = pytest.mark.parametrize("api_only", ["admin-key"], indirect=True)


@pytest.fixture(scope="module", params=["auth-off", "admin-key"])
def api_only(
    request: pytest.FixtureRequest, databases: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, sa.Engine]]:
    from tests.fixtures.postgres import TestDatabases

    assert isinstance(databases, TestDatabases)
    keyed = request.param == "admin-key"
    stack = Stack(
        databases.create(),
        tmp_path_factory.mktemp("fuzz"),
        extra_env={"SISU_AUTH": "on" if keyed else "off"},
    )
    engine = create_engine(stack.database_url, pool_size=1)
    stack.start_api()
    AUTH.clear()
    if keyed:
        with engine.begin() as conn:
            AUTH.update(bearer(make_key(conn, "admin", tenants=("*",))))
    try:
        yield stack, engine
    finally:
        stack.stop()
        engine.dispose()


Operation = APIOperation[Any, Any, Any, Any]
FUZZ = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
HOSTILE_FUZZ = settings(FUZZ, max_examples=20)
MAX_BODY_BYTES = 1_048_576  # SISU_MAX_BODY_BYTES' default, which the fuzzed API runs with


def _operations(stack: Stack) -> list[Operation]:
    api_schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    operations = [_valid(result) for result in api_schema.get_all_operations()]
    assert len(operations) >= 10, "every route of the contract is fuzzed"
    return operations


def test_no_500_and_no_write_on_4xx(api_only: tuple[Stack, sa.Engine]) -> None:
    stack, engine = api_only
    for operation in _operations(stack):

        @given(case=operation.as_strategy())
        @FUZZ
        def check(case: schemathesis.Case[Any]) -> None:
            before = ledger_counts(engine)
            response = case.call(base_url=stack.base_url, timeout=10, headers=AUTH)
            where = f"{case.method} {case.formatted_path}"
            _assert_answered_4xx_writes_nothing(
                response.status_code, response.text, engine, before, where
            )
            case.validate_response(response, checks=_CONFORMANCE)

        check()


# JSON text json.dumps never writes, each refused at the door with a 400 validation_error.
REFUSED_LITERALS = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e999",
        str(2**63),
        str(-(2**63) - 1),
        "9" * 5000,
        '"\\ud800"',
        '"tail \\udfff"',
        "[" * 40 + "]" * 40,
        '{"a":' * 40 + "1" + "}" * 40,
        "[" * 50_000 + "]" * 50_000,
    ]
)
# Hostile, yet possibly fine where they land (a long string in inputs is a valid intent).
HUGE_INTEGERS = st.one_of(
    st.integers(min_value=2**31 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**31)),
).map(str)


class HugeString(str):
    """A JSON string literal that hypothesis reports by its length, not its megabytes."""

    def __repr__(self) -> str:
        return f"<JSON string literal of {len(self)} characters>"


HUGE_LITERALS = st.one_of(
    HUGE_INTEGERS,
    st.integers(min_value=1_000, max_value=2_000_000).map(
        lambda n: HugeString(json.dumps("x" * n))
    ),
)
_SLOT = "\u0001hostile\u0001"
_KEY_SLOT = "\u0002hostile-key\u0002"


def _splice(body: Any, literal: str, *, as_key: bool, where: int) -> bytes:
    """`body` as JSON with `literal` in one of its places: a value at any depth, or a key."""
    value: Any = body if isinstance(body, dict) else {}
    node = value
    for _ in range(where):  # walk down into a nested object, making one if need be
        children = [child for child in node.values() if isinstance(child, dict)]
        node = children[0] if children else node.setdefault("nested", {})
    if as_key:
        node[_KEY_SLOT] = 1
    else:
        node[sorted(node)[0] if node else "x"] = _SLOT
    # The slot's JSON text is a string, so any literal may replace it, a string one as a key.
    return json.dumps(value).replace(json.dumps(_KEY_SLOT if as_key else _SLOT), literal).encode()


def _send(stack: Stack, case: schemathesis.Case[Any], **overrides: Any) -> httpx.Response:
    request: dict[str, Any] = {
        "method": case.method,
        "url": stack.base_url + case.formatted_path,
        "params": case.query or None,
        "headers": {
            **dict(case.headers or {}),
            **AUTH,
            "content-type": "application/x-www-form-urlencoded",
        },
        "timeout": 30,
    }
    request.update(overrides)
    return httpx.request(**request)


def _assert_answered_4xx_writes_nothing(
    status: int, text: str, engine: sa.Engine, before: dict[str, int], where: str
) -> None:
    """Never a 500; a 4xx carries the error lattice and leaves the ledger as it was."""
    assert status < 500, f"{where}: {text[:500]}"
    if 400 <= status < 500:
        body = json.loads(text)
        assert body["code"] and body["message"], where
        assert ledger_counts(engine) == before, f"{where} answered 4xx but wrote"


@KEYED_ONLY
def test_hostile_bodies_are_refused_and_write_nothing(api_only: tuple[Stack, sa.Engine]) -> None:
    stack, engine = api_only
    # Every POST that reads JSON (an upload's body is an archive, never parsed as JSON).
    posts = [
        op
        for op in _operations(stack)
        if op.method.upper() == "POST"
        and "application/x-tar" not in op.get_request_payload_content_types()
    ]
    assert len(posts) >= 6, "every state-changing route gets hostile bodies"
    for operation in posts:

        @given(
            case=operation.as_strategy(),
            literal=REFUSED_LITERALS,
            as_key=st.booleans(),
            where=st.integers(min_value=0, max_value=3),
        )
        @HOSTILE_FUZZ
        def check(case: schemathesis.Case[Any], literal: str, as_key: bool, where: int) -> None:
            if as_key and not literal.startswith('"'):
                as_key = False  # only strings can be keys
            body = _splice(case.body, literal, as_key=as_key, where=where)
            before = ledger_counts(engine)
            response = _send(stack, case, content=body)
            where_ = f"{case.method} {case.formatted_path} with {literal[:40]!r}"
            assert response.status_code == 400, f"{where_}: {response.text[:500]}"
            assert response.json()["code"] == "validation_error", where_
            assert ledger_counts(engine) == before, f"{where_} answered 400 but wrote"

        check()


@KEYED_ONLY
def test_huge_values_anywhere_never_500(api_only: tuple[Stack, sa.Engine]) -> None:
    stack, engine = api_only
    for operation in _operations(stack):

        @given(
            case=operation.as_strategy(),
            literal=HUGE_LITERALS,
            number=HUGE_INTEGERS,
            where=st.integers(min_value=0, max_value=3),
        )
        @HOSTILE_FUZZ
        def check(case: schemathesis.Case[Any], literal: str, number: str, where: int) -> None:
            # Query strings and headers stay small: uvicorn refuses huge ones itself.
            query = dict.fromkeys((param.name for param in case.operation.query), number) or None
            headers: dict[str, Any] = {
                **dict(case.headers or {}),
                **AUTH,
                "content-type": "application/json",
                "accept": "text/event-stream",
                "last-event-id": number,
            }
            overrides: dict[str, Any] = {"params": query, "headers": headers}
            body = b""
            if case.method.upper() == "POST":
                body = overrides["content"] = _splice(case.body, literal, as_key=False, where=where)
            before = ledger_counts(engine)
            response = _send(stack, case, **overrides)
            where_ = f"{case.method} {case.formatted_path} with {literal[:40]!r}"
            _assert_answered_4xx_writes_nothing(
                response.status_code, response.text, engine, before, where_
            )
            # An upload route has its own cap (SISU_WORKSPACE_MAX_UPLOAD_BYTES), not the JSON one.
            uploads = "application/x-tar" in case.operation.get_request_payload_content_types()
            if len(body) > MAX_BODY_BYTES and not uploads:
                assert response.json()["code"] == "payload_too_large", where_

        check()


_CONFORMANCE: list[schemathesis.CheckFunction] = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _valid(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """The operation, or the schema error that makes it unfuzzable (a test failure)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()
