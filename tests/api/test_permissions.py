"""The permission matrix: every route of the OpenAPI document x every role x own or other
tenant, against the real app on a real ledger (in-process, SISU_AUTH=on, no worker).

ROUTES classifies each route once; a route missing from it (or a stale entry) fails
`test_every_route_is_classified`, so a new route cannot ship unclassified.
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

from sisu_kodo.contracts.plans import TaskSpec
from sisu_kodo.db import artifacts, run_tasks, workspaces
from sisu_kodo.db.engine import create_engine
from tests.fixtures.auth import api_client, bearer, make_key
from tests.fixtures.postgres import TestDatabases

pytestmark = pytest.mark.postgres

OWN, OTHER = "tenant-a", "tenant-b"

# What each role may do, as the issue states it (independent of sisu_kodo.auth).
GRANTS: dict[str, set[str]] = {
    "viewer": {"read"},
    "submitter": {"read", "submit"},
    "approver": {"read", "decide"},
    "operator": {"read", "operate", "audit", "webhooks"},
    "admin": {"read", "submit", "decide", "operate", "audit", "keys", "webhooks"},
}


@dataclass(frozen=True)
class Route:
    needs: str | None  # None: open to anyone (health)
    tenant_scoped: bool  # another tenant's target answers 404
    body: dict[str, Any] | None = None


RUN_START = {
    "recipeName": "sandbox-default",
    "queuePartitionKey": "{tenant}",
    "workload": {"concurrency": 1, "steps": 1},
}
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/healthz"): Route(None, tenant_scoped=False),
    ("POST", "/intents"): Route("submit", tenant_scoped=False, body={"goal": "matrix"}),
    ("POST", "/intents/{intent_id}/run"): Route("submit", tenant_scoped=True, body=RUN_START),
    ("GET", "/runs"): Route("read", tenant_scoped=False),
    ("GET", "/runs/counts"): Route("read", tenant_scoped=False),
    ("POST", "/runs/bulk/cancel"): Route("operate", tenant_scoped=False, body={"dryRun": True}),
    ("POST", "/runs/bulk/retry"): Route("operate", tenant_scoped=False, body={"dryRun": True}),
    ("GET", "/runs/{run_id}"): Route("read", tenant_scoped=True),
    ("GET", "/runs/{run_id}/steps"): Route("read", tenant_scoped=True),
    ("GET", "/runs/{run_id}/tasks"): Route("read", tenant_scoped=True),
    ("GET", "/runs/{run_id}/events"): Route("read", tenant_scoped=True),
    ("POST", "/runs/{run_id}/approve-plan"): Route(
        "decide", tenant_scoped=True, body={"approvedBy": "matrix"}
    ),
    ("POST", "/runs/{run_id}/events"): Route(
        "decide",
        tenant_scoped=True,
        body={"type": "reject-plan", "payload": {"rejectedBy": "matrix"}},
    ),
    ("POST", "/runs/{run_id}/extend-approval"): Route(
        "decide", tenant_scoped=True, body={"seconds": 60, "reason": "matrix"}
    ),
    ("POST", "/runs/{run_id}/retry"): Route("operate", tenant_scoped=True),
    ("POST", "/runs/{run_id}/cancel"): Route("operate", tenant_scoped=True),
    ("GET", "/artifacts/{uri}"): Route("read", tenant_scoped=True),
    ("GET", "/audit"): Route("audit", tenant_scoped=False),
    ("GET", "/queues"): Route("read", tenant_scoped=False),
    ("GET", "/workers"): Route("read", tenant_scoped=False),
    ("GET", "/keys"): Route("keys", tenant_scoped=False),
    ("POST", "/keys"): Route(
        "keys", tenant_scoped=False, body={"name": "made", "roles": ["viewer"], "tenants": [OWN]}
    ),
    ("DELETE", "/keys/{key_id}"): Route("keys", tenant_scoped=False),
    ("POST", "/webhooks"): Route(
        "webhooks",
        tenant_scoped=False,
        body={"url": "https://hooks.example.com/sisu", "events": ["run.waiting_input"]},
    ),
    ("GET", "/webhooks"): Route("webhooks", tenant_scoped=False),
    ("DELETE", "/webhooks/{webhook_id}"): Route("webhooks", tenant_scoped=True),
    ("GET", "/runs/{run_id}/deliveries"): Route("read", tenant_scoped=True),
    # An empty upload: past auth it is a 400, and nothing is written.
    ("POST", "/workspaces"): Route("submit", tenant_scoped=False),
    ("GET", "/workspaces/{workspace_id}"): Route("read", tenant_scoped=True),
    ("GET", "/runs/{run_id}/diff"): Route("read", tenant_scoped=True),
    ("GET", "/runs/{run_id}/tasks/{task_key}/diff"): Route("read", tenant_scoped=True),
}


def expected(route: Route, role: str | None, *, own: bool) -> str:
    """allow (past auth: any answer but 401/403/404), forbidden (403), hidden (404) or
    unauthenticated (401)."""
    if route.needs is None:
        return "allow"
    if role is None:
        return "unauthenticated"
    if route.needs not in GRANTS[role]:
        return "forbidden"
    if route.tenant_scoped and not own and role != "admin":
        return "hidden"
    return "allow"


def outcome(status: int) -> str:
    return {401: "unauthenticated", 403: "forbidden", 404: "hidden"}.get(status, "allow")


@dataclass
class World:
    client: TestClient
    app: FastAPI
    keys: dict[str, str]  # role -> bearer key bound to OWN
    targets: dict[str, dict[str, str]]  # tenant -> path parameter values


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
        yield World(client, client.app, keys, targets)
    engine.dispose()


def _seed(
    client: TestClient, engine: sa.Engine, root: str, tenant: str, spare: str
) -> dict[str, str]:
    """An intent with a (queued) run in `tenant`, an artifact and a task of that run, and an
    uploaded workspace of the tenant."""
    auth = bearer(root)
    intent_id = client.post("/intents", json={"goal": tenant}, headers=auth).json()["intentId"]
    body = {**RUN_START, "queuePartitionKey": tenant}
    started = client.post(f"/intents/{intent_id}/run", json=body, headers=auth)
    assert started.status_code == 202, started.text
    run_id = started.json()["runId"]
    uri = f"artifact://run/{run_id}/step/CompileST/task/default/plan_card"
    with engine.begin() as conn:
        artifacts.put_artifact(
            conn, uri=uri, run_id=run_id, step_id="CompileST", kind="plan_card", content=b"{}"
        )
        task = TaskSpec(
            taskKey=f"{len(tenant):064x}", index=1, name="t", command="true", timeoutMs=1
        )
        run_tasks.record_tasks(conn, run_id=run_id, tasks=[task])
        workspace_id = f"ws_{tenant.encode().hex()}"
        workspaces.create_workspace(
            conn,
            workspace_id=workspace_id,
            tenant=tenant,
            created_by_key_id=None,
            snapshot_sha256="0" * 64,
            file_count=0,
            size=0,
            manifest={},
        )
    hook = {"url": "https://hooks.example.com/sisu", "events": ["run.failed"], "tenant": tenant}
    created = client.post("/webhooks", json=hook, headers=auth)
    assert created.status_code == 201, created.text
    return {
        "intent_id": intent_id,
        "run_id": run_id,
        "uri": quote(uri, safe=""),
        "key_id": spare,
        "tenant": tenant,
        "webhook_id": created.json()["id"],
        "task_key": task.taskKey,
        "workspace_id": workspace_id,
    }


def _openapi_routes(app: FastAPI) -> set[tuple[str, str]]:
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_every_route_is_classified(world: World) -> None:
    routes = _openapi_routes(world.app)
    assert routes - set(ROUTES) == set(), "classify these routes in ROUTES"
    assert set(ROUTES) - routes == set(), "these ROUTES entries are stale"


def _call(world: World, method: str, path: str, key: str | None, tenant: str) -> int:
    route = ROUTES[(method, path)]
    values = world.targets[tenant]
    concrete = path.format(**values)
    body = None
    if route.body is not None:
        body = {
            name: value.format(**values) if isinstance(value, str) else value
            for name, value in route.body.items()
        }
    headers = bearer(key) if key else {}
    status: int = world.client.request(method, concrete, json=body, headers=headers).status_code
    return status


CASES = [
    (method, path, role, own)
    for (method, path) in ROUTES
    for role in [*GRANTS, None]
    for own in (True, False)
]


@pytest.mark.parametrize(("method", "path", "role", "own"), CASES)
def test_permission_matrix(
    world: World, method: str, path: str, role: str | None, own: bool
) -> None:
    key = world.keys[role] if role else None
    status = _call(world, method, path, key, OWN if own else OTHER)
    want = expected(ROUTES[(method, path)], role, own=own)
    assert outcome(status) == want, f"{method} {path} as {role} ({'own' if own else 'other'})"
