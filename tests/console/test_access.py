"""Who may use which console page: every console route x every role x own or other
tenant, login and logout, CSRF and the session cookie, against the real app on a real
ledger (in-process, SISU_AUTH=on, no worker).

CONSOLE_ROUTES classifies each route of the console once; a route missing from it (or a
stale entry) fails `test_every_console_route_is_classified`, as the API's ROUTES does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.db import artifacts, run_tasks
from sisu_kodo.db.engine import create_engine
from tests.api.test_permissions import GRANTS, RUN_START, expected
from tests.fixtures.auth import api_client, bearer, make_key
from tests.fixtures.console import console_login, csrf_of
from tests.fixtures.postgres import TestDatabases

pytestmark = pytest.mark.postgres

OWN, OTHER = "tenant-a", "tenant-b"
TASK_KEY = "t" * 64
PLAN = b'{"goal": "matrix", "tasks": [{"name": "one", "command": "true"}]}'


@dataclass(frozen=True)
class Route:
    needs: str | None  # None: open (login pages, static files)
    tenant_scoped: bool
    form: dict[str, Any] | None = None
    query: str = ""


CONSOLE_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/"): Route(None, False),
    ("GET", "/login"): Route(None, False),
    ("POST", "/login"): Route(None, False),
    ("POST", "/logout"): Route(None, False),
    ("MOUNT", "/static"): Route(None, False),
    ("GET", "/runs"): Route("read", False),
    ("GET", "/runs/statuses"): Route("read", False),
    ("POST", "/runs/bulk"): Route("operate", False, form={"operation": "cancel", "scope": "every"}),
    ("POST", "/runs/bulk/{operation}"): Route("operate", False, form={"scope": "picked"}),
    ("GET", "/approvals"): Route("read", False),
    ("GET", "/queues"): Route("read", False),
    ("GET", "/runs/{run_id}"): Route("read", True),
    ("GET", "/runs/{run_id}/live"): Route("read", True),
    ("GET", "/runs/{run_id}/timeline"): Route("read", True),
    ("GET", "/runs/{run_id}/tasks/{task_key}"): Route("read", True),
    ("GET", "/runs/{run_id}/artifact"): Route("read", True, query="?uri={uri}"),
    ("POST", "/runs/{run_id}/approve"): Route("decide", True, form={"notes": "matrix"}),
    ("POST", "/runs/{run_id}/reject"): Route("decide", True, form={"reason": "matrix"}),
    ("GET", "/runs/{run_id}/confirm/{operation}"): Route("operate", True),
    ("POST", "/runs/{run_id}/retry"): Route("operate", True),
    ("POST", "/runs/{run_id}/cancel"): Route("operate", True),
    ("GET", "/audit"): Route("audit", False),
    ("GET", "/keys"): Route("keys", False),
    ("POST", "/keys"): Route(
        "keys", False, form={"name": "made", "roles": "viewer", "tenants": OWN}
    ),
    ("POST", "/keys/{key_id}/revoke"): Route("keys", False),
}


@dataclass
class World:
    client: TestClient
    app: FastAPI
    engine: sa.Engine
    keys: dict[str, str]  # role -> key bound to OWN
    targets: dict[str, dict[str, str]]  # tenant -> path parameter values
    root: str


@pytest.fixture(scope="module")
def world(databases: TestDatabases) -> Iterator[World]:
    url = databases.create()
    engine = create_engine(url, pool_size=1)
    with api_client(url, SISU_AUTH="on") as client:
        with engine.begin() as conn:
            keys = {role: make_key(conn, role, tenants=(OWN,)) for role in GRANTS}
            root = make_key(conn, "admin", tenants=("*",))
            spare = make_key(conn, "viewer", tenants=(OWN,)).split("_")[1]
        targets = {tenant: _seed(client, engine, root, tenant, spare) for tenant in (OWN, OTHER)}
        assert isinstance(client.app, FastAPI)
        yield World(client, client.app, engine, keys, targets, root)
    engine.dispose()


def _seed(
    client: TestClient, engine: sa.Engine, root: str, tenant: str, spare: str
) -> dict[str, str]:
    """A canceled run in `tenant` (so its timeline stream ends), one decided task and an
    artifact."""
    auth = bearer(root)
    intent_id = client.post("/intents", json={"goal": tenant}, headers=auth).json()["intentId"]
    body = {**RUN_START, "queuePartitionKey": tenant}
    run_id = client.post(f"/intents/{intent_id}/run", json=body, headers=auth).json()["runId"]
    assert client.post(f"/runs/{run_id}/cancel", headers=auth).status_code == 202
    uri = f"artifact://run/{run_id}/step/CompileST/task/default/plan_card"
    task = TaskSpec(taskKey=TASK_KEY, index=1, name="one", command="true", timeoutMs=1000)
    with engine.begin() as conn:
        artifacts.put_artifact(
            conn, uri=uri, run_id=run_id, step_id="CompileST", kind="plan_card", content=PLAN
        )
        run_tasks.record_tasks(conn, run_id=run_id, tasks=[task])
    return {
        "run_id": run_id,
        "uri": quote(uri, safe=""),
        "key_id": spare,
        "task_key": TASK_KEY,
        "operation": "cancel",
    }


def _console_routes(app: FastAPI) -> set[tuple[str, str]]:
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    found: set[tuple[str, str]] = set()
    pending: list[Any] = list(mount.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, Mount):
            found.add(("MOUNT", route.path))
        elif hasattr(route, "original_router"):  # an included router: walk its routes
            pending.extend(route.original_router.routes)
        else:
            found |= {(method, route.path) for method in route.methods if method != "HEAD"}
    return found


def test_every_console_route_is_classified(world: World) -> None:
    routes = _console_routes(world.app)
    assert routes - set(CONSOLE_ROUTES) == set(), "classify these console routes"
    assert set(CONSOLE_ROUTES) - routes == set(), "these CONSOLE_ROUTES entries are stale"


def outcome(status: int, location: str) -> str:
    if status == 303 and location.startswith("/console/login"):
        return "unauthenticated"
    return {401: "unauthenticated", 403: "forbidden", 404: "hidden"}.get(status, "allow")


def _call(world: World, method: str, path: str, role: str | None, tenant: str) -> tuple[int, str]:
    route = CONSOLE_ROUTES[(method, path)]
    values = world.targets[tenant]
    if role is None:
        world.client.cookies.clear()
        csrf = csrf_of(world.client.get("/console/login").text)
    else:
        csrf = console_login(world.client, world.keys[role])
    url = "/console" + path.format(**values) + route.query.format(**values)
    if method == "GET":
        answer = world.client.get(url, follow_redirects=False)
    else:
        answer = world.client.post(
            url, data={"csrf": csrf, **(route.form or {})}, follow_redirects=False
        )
    return answer.status_code, answer.headers.get("location", "")


CASES = [
    (method, path, role, own)
    for (method, path), route in CONSOLE_ROUTES.items()
    if route.needs is not None
    for role in [*GRANTS, None]
    for own in (True, False)
]


@pytest.mark.parametrize(("method", "path", "role", "own"), CASES)
def test_console_permission_matrix(
    world: World, method: str, path: str, role: str | None, own: bool
) -> None:
    route = CONSOLE_ROUTES[(method, path)]
    status, location = _call(world, method, path, role, OWN if own else OTHER)
    want = expected(route, role, own=own)  # type: ignore[arg-type]
    assert outcome(status, location) == want, (
        f"{method} {path} as {role} ({'own' if own else 'other'}): {status}"
    )


def _event_ids(stream: str) -> list[int]:
    return [int(line[3:].strip()) for line in stream.splitlines() if line.startswith("id:")]


def test_the_timeline_streams_html_items_and_resumes_after_last_event_id(world: World) -> None:
    console_login(world.client, world.root)
    url = f"/console/runs/{world.targets[OWN]['run_id']}/timeline"
    whole = world.client.get(url).text
    ids = _event_ids(whole)
    assert ids == sorted(ids) and len(ids) >= 2
    assert "event: timeline" in whole and '<li id="event-' in whole and "run.canceled" in whole
    assert "event: end" in whole  # the run has ended: the page closes its stream
    resumed = world.client.get(url, headers={"Last-Event-ID": str(ids[0])}).text
    assert _event_ids(resumed) == ids[1:]
    assert _event_ids(world.client.get(f"{url}?after={ids[-1]}").text) == []
