"""Hostile input is refused at the door: its 4xx, its stable code, and not one row written.

Each case is one finding of the adversarial pass (issue 10): inputs that answered 500,
were accepted and then never planned, or let a page in an operator's browser drive the
API. The limits' other side is tested too: what the door accepts at its limits, runs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx
import pytest
import sqlalchemy as sa

from sisu_kodo.api.bodies import MAX_JSON_DEPTH
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.intents import MAX_GOAL_CHARS, MOCK_KNOB_CAPS
from sisu_kodo.contracts.runs import RunStart, RunStatus, Workload
from tests.fixtures.processes import Stack
from tests.fixtures.runs import ledger_counts, run_to_gate, wait_status

pytestmark = pytest.mark.integration

MAX_BODY_BYTES = 1_048_576  # SISU_MAX_BODY_BYTES' default, which the test stack runs with
CURL_FORM = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` labels
CROSS_SITE_FORM = {"content-type": "text/plain", "origin": "http://evil.example"}


def nested(levels: int) -> dict[str, Any]:
    """A JSON object `levels` containers deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def intent_body(**fields: Any) -> bytes:
    return json.dumps({"goal": "build logic", **fields}).encode()


def with_literal(literal: str) -> bytes:
    """An intent whose inputs hold `literal` verbatim: JSON text json.dumps never writes."""
    return b'{"goal":"build logic","inputs":{"x":' + literal.encode() + b"}}"


@dataclass(frozen=True)
class Hostile:
    """One hostile request; `path` may name the gated run as {run}."""

    name: str
    path: str
    body: bytes | None
    status: int
    code: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(CURL_FORM))


CASES = [
    Hostile("NaN", "/intents", with_literal("NaN"), 400, "validation_error"),
    Hostile("Infinity", "/intents", with_literal("Infinity"), 400, "validation_error"),
    Hostile("-Infinity", "/intents", with_literal("-Infinity"), 400, "validation_error"),
    Hostile("1e400", "/intents", with_literal("1e400"), 400, "validation_error"),
    Hostile("-1e400", "/intents", with_literal("-1e400"), 400, "validation_error"),
    Hostile("integer past bigint", "/intents", with_literal(str(2**63)), 400, "validation_error"),
    Hostile("5000-digit integer", "/intents", with_literal("9" * 5000), 400, "validation_error"),
    Hostile(
        "NaN in a run's workload",
        "/intents/it_any/run",
        b'{"queuePartitionKey":"t","workload":{"concurrency":NaN,"steps":1}}',
        400,
        "validation_error",
    ),
    Hostile(
        "Infinity in an approval",
        "/runs/{run}/approve-plan",
        b'{"approvedBy":"ops","notes":Infinity}',
        400,
        "validation_error",
    ),
    Hostile(
        "lone surrogate in a value", "/intents", b'{"goal":"\\ud800"}', 400, "validation_error"
    ),
    Hostile(
        "lone surrogate in a key",
        "/intents",
        b'{"goal":"g","inputs":{"\\udfff":1}}',
        400,
        "validation_error",
    ),
    Hostile("lone surrogate as a field", "/intents", b'{"\\ud800":1}', 400, "validation_error"),
    Hostile(
        "lone surrogate in an event payload",
        "/runs/{run}/events",
        b'{"type":"approve-plan","payload":{"approvedBy":"\\ud83d"}}',
        400,
        "validation_error",
    ),
    Hostile("not UTF-8", "/intents", b'{"goal":"\xff\xfe"}', 400, "validation_error"),
    Hostile(
        "500-level nested inputs",
        "/intents",
        intent_body(inputs=nested(500)),
        400,
        "validation_error",
    ),
    Hostile(
        "nesting past the recursion limit",
        "/intents",
        b'{"goal":"g","inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "validation_error",
    ),
    Hostile(
        "nested one level past the cap",
        "/intents",
        intent_body(inputs=nested(MAX_JSON_DEPTH)),
        400,
        "validation_error",
    ),
    Hostile(
        "goal one character too long",
        "/intents",
        intent_body(goal="g" * (MAX_GOAL_CHARS + 1)),
        400,
        "validation_error",
    ),
    *(
        Hostile(
            f"{knob} over its cap",
            "/intents",
            intent_body(constraints={knob: cap + 1}),
            400,
            "validation_error",
        )
        for knob, cap in MOCK_KNOB_CAPS.items()
    ),
    Hostile(
        "mockOutputBytes not a count",
        "/intents",
        intent_body(constraints={"mockOutputBytes": "lots"}),
        400,
        "validation_error",
    ),
    Hostile(
        "offset past any task",
        "/runs/{run}/tasks?offset=2147483647",
        None,
        400,
        "validation_error",
        "GET",
    ),
    Hostile(
        "huge limit", "/runs/{run}/tasks?limit=1" + "0" * 30, None, 400, "validation_error", "GET"
    ),
    *(
        Hostile(
            f"Last-Event-ID {value!r}",
            "/runs/{run}/events",
            None,
            400,
            "validation_error",
            "GET",
            {"accept": "text/event-stream", "last-event-id": value},
        )
        for value in ("abc", "1.5", "-1", str(2**31), "9" * 40)
    ),
    Hostile(
        "2 MiB body with Content-Length",
        "/intents",
        intent_body(inputs={"pad": "x" * (2 * MAX_BODY_BYTES)}),
        413,
        "payload_too_large",
    ),
    Hostile(
        "cross-site text/plain approval",
        "/runs/{run}/approve-plan",
        b'{"approvedBy":"evil"}',
        403,
        "origin_not_allowed",
        headers=CROSS_SITE_FORM,
    ),
    Hostile(
        "cross-site cancel",
        "/runs/{run}/cancel",
        None,
        403,
        "origin_not_allowed",
        headers=CROSS_SITE_FORM,
    ),
    Hostile(
        "cross-site intent",
        "/intents",
        intent_body(),
        403,
        "origin_not_allowed",
        headers=CROSS_SITE_FORM,
    ),
    Hostile(
        "Origin null (sandboxed page)",
        "/intents",
        intent_body(),
        403,
        "origin_not_allowed",
        headers={**CURL_FORM, "origin": "null"},
    ),
    Hostile(
        "loopback Origin on another scheme",
        "/intents",
        intent_body(),
        403,
        "origin_not_allowed",
        headers={**CURL_FORM, "origin": "file://127.0.0.1"},
    ),
    Hostile(
        "Sec-Fetch-Site cross-site without Origin",
        "/runs/{run}/cancel",
        None,
        403,
        "origin_not_allowed",
        headers={"sec-fetch-site": "cross-site"},
    ),
    Hostile(
        "foreign Host and Origin (DNS rebinding)",
        "/runs/{run}/approve-plan",
        b'{"approvedBy":"evil"}',
        400,
        "host_not_allowed",
        headers={**CROSS_SITE_FORM, "host": "evil.example:3001"},
    ),
    Hostile(
        "foreign Host on a read",
        "/runs/{run}",
        None,
        400,
        "host_not_allowed",
        "GET",
        {"host": "rebound.example"},
    ),
    Hostile(
        "Host with user info",
        "/healthz",
        None,
        400,
        "host_not_allowed",
        "GET",
        {"host": "a@127.0.0.1"},
    ),
]


@pytest.fixture(scope="module")
def gated_run(client: SisuClient) -> str:
    """A run waiting at the gate: what a hostile approval or cancel would act on."""
    return run_to_gate(client, partition="tenant-hostile", steps=1).runId


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_refused_and_writes_nothing(
    case: Hostile, gated_run: str, stack: Stack, db: sa.Engine
) -> None:
    before = ledger_counts(db)
    response = httpx.request(
        case.method,
        stack.base_url + case.path.format(run=gated_run),
        content=case.body,
        headers=case.headers,
        timeout=30,
    )
    assert response.status_code == case.status, response.text[:500]
    body = response.json()
    assert body["code"] == case.code
    assert body["message"]
    assert ledger_counts(db) == before
    assert run_status(db, gated_run) == RunStatus.WAITING_INPUT.value


def run_status(db: sa.Engine, run_id: str) -> str:
    with db.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM app.runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
    return str(status)


def test_depth_refusal_names_the_cap(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/intents", content=intent_body(inputs=nested(500)), headers=CURL_FORM
    )
    assert response.status_code == 400
    assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json()["message"]
    assert response.json()["details"][0]["path"].startswith("inputs.a.a")


def test_surrogate_refusal_escapes_what_it_names(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/intents", content=b'{"goal":"g","inputs":{"\\udfff":1}}'
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["path"] == "inputs.\\udfff"


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"goal":"build logic","inputs":{"pad":"'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}}'


def test_chunked_body_past_the_cap_is_413(stack: Stack, db: sa.Engine) -> None:
    before = ledger_counts(db)
    response = httpx.post(
        f"{stack.base_url}/intents", content=_chunks(2 * MAX_BODY_BYTES), headers=CURL_FORM
    )
    assert "content-length" not in response.request.headers  # it went chunked
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert ledger_counts(db) == before


class RawConnection:
    """One HTTP/1.1 connection driven by hand (h11), to send part of a body and then
    read the answer while the rest is still owed."""

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        assert url.host == "127.0.0.1" and url.port is not None
        self.authority = f"{url.host}:{url.port}"
        self.sock = socket.create_connection((url.host, url.port), timeout=30)
        self.http = h11.Connection(h11.CLIENT)

    def send(self, *events: h11.Request | h11.Data) -> None:
        for event in events:
            self.sock.sendall(self.http.send(event) or b"")

    def response(self) -> tuple[int, dict[str, Any]]:
        status, body = 0, b""
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, json.loads(body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(stack: Stack) -> Iterator[Callable[..., RawConnection]]:
    opened: list[RawConnection] = []

    def connect() -> RawConnection:
        opened.append(RawConnection(stack.base_url))
        return opened[-1]

    yield connect
    for connection in opened:
        connection.close()


def _post_headers(connection: RawConnection, *extra: tuple[str, str]) -> h11.Request:
    return h11.Request(
        method="POST",
        target="/intents",
        headers=[("host", connection.authority), *CURL_FORM.items(), *extra],
    )


def test_declared_oversize_body_is_refused_before_it_is_sent(
    raw: Callable[[], RawConnection], db: sa.Engine
) -> None:
    before = ledger_counts(db)
    connection = raw()
    # 100 MB announced, not one byte sent: the answer cannot have waited for the body.
    connection.send(_post_headers(connection, ("content-length", str(100 * 1024 * 1024))))
    status, body = connection.response()
    assert (status, body["code"]) == (413, "payload_too_large")
    assert ledger_counts(db) == before


def test_chunked_oversize_body_is_refused_while_it_streams(
    raw: Callable[[], RawConnection], db: sa.Engine
) -> None:
    before = ledger_counts(db)
    connection = raw()
    connection.send(_post_headers(connection, ("transfer-encoding", "chunked")))
    # One byte past the cap, and the body never ends: only a streaming check answers.
    for chunk in _chunks(MAX_BODY_BYTES + 1):
        connection.send(h11.Data(data=chunk))
    status, body = connection.response()
    assert (status, body["code"]) == (413, "payload_too_large")
    assert ledger_counts(db) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://127.0.0.1:5173"},
        {"origin": "https://localhost"},
        {"host": "localhost:3001", "sec-fetch-site": "same-origin"},
        {"host": "[::1]:3001", "origin": "http://[::1]:3001"},
        {"host": "LOCALHOST."},
    ],
    ids=["loopback page", "https localhost", "localhost host", "ipv6 loopback", "host case"],
)
def test_loopback_hosts_and_origins_are_served(
    headers: dict[str, str], stack: Stack, db: sa.Engine
) -> None:
    before = ledger_counts(db)["app.intents"]
    response = httpx.post(
        f"{stack.base_url}/intents", content=intent_body(), headers={**CURL_FORM, **headers}
    )
    assert response.status_code == 201, response.text
    assert ledger_counts(db)["app.intents"] == before + 1


def test_reads_from_another_origin_are_answered(stack: Stack) -> None:
    # Reads change nothing, and without CORS headers the page cannot see the answer.
    response = httpx.get(f"{stack.base_url}/healthz", headers={"origin": "http://evil.example"})
    assert response.status_code == 200


def test_allowlists_come_from_settings(make_stack: Callable[..., Stack]) -> None:
    custom = make_stack(
        SISU_ALLOWED_HOSTS="127.0.0.1, ops.example, *.corp.example",
        SISU_ALLOWED_ORIGINS="https://ops.example",
    )
    custom.start_api()
    url = f"{custom.base_url}/intents"

    def post(**headers: str) -> int:
        return httpx.post(url, content=intent_body(), headers={**CURL_FORM, **headers}).status_code

    assert post(host="ops.example:8443", origin="https://ops.example") == 201
    assert post(host="api.corp.example") == 201
    assert post(host="localhost") == 400  # the list replaces the loopback default
    assert post(host="corp.example") == 400  # '*.corp.example' is its subdomains only
    assert post(host="ops.example", origin="http://ops.example") == 403  # scheme differs


def test_deepest_accepted_inputs_are_planned(client: SisuClient, stack: Stack) -> None:
    # The body is MAX_JSON_DEPTH deep: the intent object, then inputs' own levels.
    inputs = nested(MAX_JSON_DEPTH - 1)
    response = httpx.post(
        f"{stack.base_url}/intents", content=intent_body(inputs=inputs), headers=CURL_FORM
    )
    assert response.status_code == 201, response.text
    run = _start(client, response.json()["intentId"])
    assert wait_status(client, run, RunStatus.WAITING_INPUT).lastStep == "DecideST"


def test_longest_accepted_goal_is_planned(client: SisuClient) -> None:
    # Quotes swell under shell quoting: the worst goal for a command that cites it.
    goal = ("it's " * MAX_GOAL_CHARS)[:MAX_GOAL_CHARS]
    run_id = client.submit(goal, partition="tenant-hostile", steps=3, concurrency=1).runId
    run = wait_status(client, run_id, RunStatus.WAITING_INPUT)
    compiled = next(step for step in run.steps if step.stepId == "CompileST")
    assert compiled.output is not None
    assert compiled.output["goal"] == goal.strip()  # the plan keeps the whole goal


def _start(client: SisuClient, intent_id: str) -> str:
    start = RunStart(queuePartitionKey="tenant-hostile", workload=Workload(concurrency=1, steps=1))
    return client.start_run(intent_id, start).runId
