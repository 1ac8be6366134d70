"""The worker process: the only place workflows execute.

Start-up order matters: collaborators are built first (so a bad configuration fails
before touching the database), then the databases are prepared, the executor id is
leased, the runtime is bound, and only then does DBOS launch and start dequeuing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import ExitStack
from types import FrameType
from typing import NoReturn

import uvicorn
from dbos import DBOS, DBOSClient, SQLAlchemyDatasource

from sisu_kodo.blobs import create_blob_store
from sisu_kodo.config import APP_NAME, Settings
from sisu_kodo.db.databases import open_databases
from sisu_kodo.db.engine import libpq_url, same_database, sqlalchemy_url
from sisu_kodo.gates import GateSweep
from sisu_kodo.notify import WebhookDispatcher
from sisu_kodo.oc import create_planner
from sisu_kodo.oc.health import await_opencode
from sisu_kodo.sbx import create_provider
from sisu_kodo.worker.admin import create_admin_app
from sisu_kodo.worker.cancel_watch import CancelWatcher
from sisu_kodo.worker.heartbeat import Heartbeat
from sisu_kodo.worker.identity import ExecutorLease
from sisu_kodo.worker.recovery import RecoverySweep, RunWatchdog
from sisu_kodo.worker.task_listener import TaskListener
from sisu_kodo.workflows import run as _registers_workflows  # noqa: F401
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.queues import register_queues

log = logging.getLogger("sisu_kodo.worker")


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly.

    Everything acquired is released in reverse order on the way out, also when start-up
    fails half-way (a held executor id, a failed migration, DBOS launch): no connection,
    lease or embedded PostgreSQL outlives the process's intent to run.
    """
    # Before any database work: a bad planner configuration, or (strict mode) a missing or
    # unhealthy OpenCode, stops the worker with one line.
    opencode = await_opencode(settings)
    blobs = create_blob_store(settings)
    sandbox = create_provider(settings, snapshots=blobs.get)
    with ExitStack() as resources:
        databases = resources.enter_context(open_databases(settings))
        settings = databases.settings
        engine = databases.engine()
        system_engine = databases.engine(system=True, pool_size=2, max_overflow=2)
        planner = create_planner(settings, engine)
        databases.prepare(engine)
        lease = ExecutorLease(engine)
        executor_id = lease.acquire(
            requested=settings.topology.executor_id,
            prefix=settings.topology.default_executor_prefix,
        )
        resources.callback(lease.release)
        datasource = SQLAlchemyDatasource.create(sqlalchemy_url(databases.url))
        # Task workflows are enqueued in batches, one transaction each, through a client on
        # the system database (see workflows/steps.enqueue_tasks).
        client = DBOSClient(system_database_engine=system_engine, application_name=APP_NAME)
        resources.callback(client.destroy)
        rt = runtime.Runtime(
            settings=settings,
            engine=engine,
            system_engine=system_engine,
            client=client,
            datasource=datasource,
            planner=planner,
            sandbox=sandbox,
            blobs=blobs,
            attempt_engine=databases.engine(pool_pre_ping=False),
        )
        runtime.bind(rt)
        resources.callback(DBOS.destroy, workflow_completion_timeout_sec=0)
        DBOS(
            config={
                "name": APP_NAME,
                "system_database_url": databases.system_url,
                "application_version": settings.topology.app_version,
                "executor_id": executor_id,
            }
        )
        stop = threading.Event()
        _on_signals(stop)
        DBOS.launch()
        register_queues(settings)
        _start_background(
            resources,
            rt,
            executor_id=executor_id,
            lease=lease,
            stop=stop,
            atomic=same_database(databases.url, databases.system_url),
        )
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


def exit_leaving_workflows_to_recovery() -> NoReturn:
    """End the worker process once run_worker has released all it held.

    Workflows still executing run in DBOS's queue threads, which the interpreter would join
    at exit; a task waiting on a command can take minutes, so a SIGTERM ended in the
    supervisor's SIGKILL instead. Those workflows are durable: the next worker with this
    executor id, or another worker's recovery sweep, resumes them from their last
    checkpoint, as after a crash (their sandboxes are reattached, not rerun).
    """
    left = [
        t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
    ]
    if left:
        log.info(
            "worker exits with %d thread(s) busy; their workflows resume on recovery", len(left)
        )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _start_background(
    resources: ExitStack,
    rt: runtime.Runtime,
    *,
    executor_id: str,
    lease: ExecutorLease,
    stop: threading.Event,
    atomic: bool,
) -> None:
    """Heartbeat, recovery sweep, task listener, cancel watcher and admin server, each stopped by
    `resources` on exit."""
    settings = rt.settings
    heartbeat = Heartbeat(
        rt.engine,
        lease,
        app_version=settings.topology.app_version,
        period=settings.queues.heartbeat_seconds,
        on_lease_lost=stop.set,
    )
    heartbeat.start()
    resources.callback(heartbeat.stop)
    sweep = RecoverySweep(
        rt.engine,
        rt.client,
        executor_id=executor_id,
        period=settings.queues.sweep_seconds,
        heartbeat_ttl=settings.queues.heartbeat_ttl_seconds,
        watchdog=RunWatchdog(
            rt.engine,
            rt.client,
            grace_seconds=settings.queues.watchdog_grace_seconds,
            batch=settings.queues.watchdog_batch,
        ),
    )
    sweep.start()
    resources.callback(sweep.stop)
    dispatcher = WebhookDispatcher(rt.engine, rt.client, settings, atomic=atomic)
    dispatcher.start()
    resources.callback(dispatcher.stop)
    gate_sweep = GateSweep(rt.engine, period=settings.gates.gate_sweep_seconds)
    gate_sweep.start()
    resources.callback(gate_sweep.stop)
    listener = TaskListener(libpq_url(rt.engine), rt.wakeups)
    listener.start()
    resources.callback(listener.stop)
    watcher = CancelWatcher(rt, executor_id=executor_id)
    watcher.start()
    resources.callback(watcher.stop)
    admin = uvicorn.Server(
        uvicorn.Config(
            create_admin_app(rt, executor_id=executor_id),
            host=settings.topology.host,
            port=settings.topology.admin_port,
            log_level="warning",
        )
    )
    threading.Thread(target=admin.run, name="sisu-admin", daemon=True).start()
    resources.callback(setattr, admin, "should_exit", True)


def _on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
