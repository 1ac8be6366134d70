"""The worker process: the only place workflows execute.

Start-up order matters: collaborators are built first (so a bad configuration fails
before touching the database), then the databases are prepared, the executor id is
leased, the runtime is bound, and only then does DBOS launch and start dequeuing.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from dbos import DBOS, DBOSClient, SQLAlchemyDatasource

from sisu_kodo.config import APP_NAME, Settings
from sisu_kodo.db.bootstrap import prepare_databases
from sisu_kodo.db.embedded import resolve_database
from sisu_kodo.db.engine import create_engine, sqlalchemy_url
from sisu_kodo.oc import create_planner
from sisu_kodo.oc.health import await_opencode
from sisu_kodo.sbx import create_provider
from sisu_kodo.worker.admin import create_admin_app
from sisu_kodo.worker.heartbeat import Heartbeat
from sisu_kodo.worker.identity import ExecutorLease
from sisu_kodo.worker.recovery import RecoverySweep
from sisu_kodo.workflows import run as _registers_workflows  # noqa: F401
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.queues import register_queues

log = logging.getLogger("sisu_kodo.worker")


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    # Before any database work: a bad planner configuration, or (strict mode) a missing or
    # unhealthy OpenCode, stops the worker with one line.
    opencode = await_opencode(settings)
    sandbox = create_provider(settings)
    settings, embedded = resolve_database(settings)
    assert settings.topology.database_url
    system_url = settings.topology.system_database_url or settings.topology.database_url
    engine = create_engine(settings.topology.database_url)
    system_engine = create_engine(system_url, pool_size=2, max_overflow=2)
    planner = create_planner(settings, engine)
    prepare_databases(engine, system_url)
    lease = ExecutorLease(engine)
    executor_id = lease.acquire(
        requested=settings.topology.executor_id, prefix=settings.topology.default_executor_prefix
    )
    datasource = SQLAlchemyDatasource.create(sqlalchemy_url(settings.topology.database_url))
    # Task workflows are enqueued in batches, one transaction each, through a client on
    # the system database (see workflows/steps.enqueue_tasks).
    client = DBOSClient(system_database_engine=system_engine, application_name=APP_NAME)
    rt = runtime.Runtime(
        settings=settings,
        engine=engine,
        system_engine=system_engine,
        client=client,
        datasource=datasource,
        planner=planner,
        sandbox=sandbox,
    )
    runtime.bind(rt)
    DBOS(
        config={
            "name": APP_NAME,
            "system_database_url": system_url,
            "application_version": settings.topology.app_version,
            "executor_id": executor_id,
        }
    )
    stop = threading.Event()
    _on_signals(stop)
    heartbeat = Heartbeat(
        engine,
        lease,
        app_version=settings.topology.app_version,
        period=settings.queues.heartbeat_seconds,
        on_lease_lost=stop.set,
    )
    sweep = RecoverySweep(
        engine,
        system_engine,
        executor_id=executor_id,
        period=settings.queues.sweep_seconds,
        heartbeat_ttl=settings.queues.heartbeat_ttl_seconds,
    )
    admin = uvicorn.Server(
        uvicorn.Config(
            create_admin_app(rt, executor_id=executor_id, system_engine=system_engine),
            host=settings.topology.host,
            port=settings.topology.admin_port,
            log_level="warning",
        )
    )
    admin_thread = threading.Thread(target=admin.run, name="sisu-admin", daemon=True)
    try:
        DBOS.launch()
        register_queues(settings)
        heartbeat.start()
        sweep.start()
        admin_thread.start()
        log.info(
            "worker %s ready (app version %s, planner %s [%s], sandbox %s, admin %s:%s)",
            executor_id,
            settings.topology.app_version,
            planner.mode,
            opencode.detail,
            sandbox.name,
            settings.topology.host,
            settings.topology.admin_port,
        )
        stop.wait()
        log.info("worker %s stopping", executor_id)
    finally:
        admin.should_exit = True
        sweep.stop()
        heartbeat.stop()
        DBOS.destroy(workflow_completion_timeout_sec=0)
        client.destroy()
        lease.release()
        system_engine.dispose()
        engine.dispose()
        if embedded is not None:
            embedded.stop()


def _on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
