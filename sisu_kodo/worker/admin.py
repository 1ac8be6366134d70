"""The worker's admin server on ADMIN_PORT: /healthz and Prometheus /metrics."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

import sqlalchemy as sa
from dbos import DBOSClient
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from sisu_kodo.db import metrics, runs, sandbox_runs
from sisu_kodo.oc.health import check_daemon
from sisu_kodo.workflows.runtime import Runtime


class LedgerCollector(Collector):
    """Reads the figures from the database at scrape time, so every worker reports the same."""

    def __init__(self, engine: sa.Engine, client: DBOSClient) -> None:
        self._engine = engine
        self._client = client

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            "sisu_queue_workflows",
            "Workflows waiting or running, by queue",
            labels=["queue", "status"],
        )
        for queue, status, count in metrics.queue_depths(self._client):
            depth.add_metric([queue, status], count)
        yield depth
        with self._engine.connect() as conn:
            run_counts = runs.count_runs_by_status(conn)
            attempts = sandbox_runs.count_attempts_by_code(conn)
            latencies = metrics.step_latencies(conn)
        by_status = GaugeMetricFamily("sisu_runs", "Runs by status", labels=["status"])
        for status, count in sorted(run_counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        tasks = GaugeMetricFamily(
            "sisu_task_attempts", "Sandbox task attempts by errCode", labels=["err_code"]
        )
        for code, count in sorted(attempts.items()):
            tasks.add_metric([code], count)
        yield tasks
        steps = SummaryMetricFamily(
            "sisu_step_duration_seconds", "Run step durations", labels=["step"]
        )
        for step, count, total in latencies:
            steps.add_metric([step], count_value=count, sum_value=total)
        yield steps


def create_admin_app(rt: Runtime, *, executor_id: str) -> FastAPI:
    app = FastAPI(title="Sisu-Kodo worker admin")
    registry = CollectorRegistry()
    registry.register(LedgerCollector(rt.engine, rt.client))

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with rt.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # report, don't crash, when the database is away
            database = f"error: {exc}"
        sandbox = rt.sandbox.health()
        opencode = check_daemon(rt.settings, timeout=1.0)
        # Only strict mode needs OpenCode up; otherwise plans fall back, marked on the run.
        ok = (
            database == "ok"
            and sandbox.ok
            and (opencode.ok or not rt.settings.planner.oc_strict_mode)
        )
        return JSONResponse(
            {
                "ok": ok,
                "role": "worker",
                "executorId": executor_id,
                "appVersion": rt.settings.topology.app_version,
                "database": database,
                "planner": rt.planner.mode,
                "sandbox": sandbox.model_dump(),
                "opencode": {
                    "required": opencode.required,
                    "reachable": opencode.reachable,
                    "detail": opencode.detail,
                },
            },
            status_code=200 if ok else 503,
        )

    token = rt.settings.api.admin_token

    @app.get("/metrics")
    def prometheus_metrics(
        authorization: Annotated[str | None, Header()] = None,
    ) -> PlainTextResponse:
        """Prometheus metrics; with SISU_ADMIN_TOKEN set, only for `Bearer <token>`."""
        if token is not None and not _bearer_matches(authorization, token.get_secret_value()):
            return PlainTextResponse(
                "unauthenticated", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _bearer_matches(authorization: str | None, token: str) -> bool:
    """Constant-time comparison of the request's bearer token with SISU_ADMIN_TOKEN."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
