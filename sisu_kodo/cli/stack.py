"""Process management: `sisu up` (worker + API on one machine), `sisu stop`, and the two roles.

The database and OpenCode modules are imported by `sisu up` alone: every `sisu` command
imports this module, and the HTTP commands start without them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from sisu_kodo.config import OcMode, Settings
from sisu_kodo.deadlines import WaitTimeout, wait_until
from sisu_kodo.processes import read_live_pid, stop_pid, terminate_processes

PID_FILE = "sisu-up.pid"
STOP_GRACE_SECONDS = 15.0


class StackError(Exception):
    """`sisu up` could not start, or a component died."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pid_file(settings: Settings) -> Path:
    return settings.topology.resolved_data_dir / PID_FILE


def spawn_role(role: str, env: dict[str, str], log_path: Path) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sisu_kodo.cli.main", role],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Child(role, process, log_path)


def wait_healthy(url: str, *, child: Child, timeout: float, check_worker: bool = False) -> None:
    def healthy() -> bool:
        if child.process.poll() is not None:
            raise StackError(
                f"{child.name} exited with {child.process.returncode}; see {child.log_path}"
            )
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and (
            not check_worker or response.json().get("workerReady") is True
        )

    try:
        wait_until(healthy, timeout=timeout, interval=0.2, what=f"{child.name} health")
    except WaitTimeout as exc:
        raise StackError(
            f"{child.name} not healthy at {url} after {timeout:.0f}s; see {child.log_path}"
        ) from exc


def terminate(children: list[Child], grace: float = STOP_GRACE_SECONDS) -> None:
    terminate_processes([child.process for child in children], grace=grace)


def run_stack(settings: Settings, *, ready: Callable[[str, Path], None] | None = None) -> int:
    """Start the database (embedded if needed), a worker and the API; block until stopped."""
    from sisu_kodo.db.databases import open_databases

    path = pid_file(settings)
    existing = read_live_pid(path)
    if existing is not None:
        raise StackError(f"sisu up is already running (pid {existing}); run `sisu stop` first")
    with open_databases(settings) as databases:
        databases.prepare()
        return _serve(databases.settings, path, ready=ready)


def _serve(settings: Settings, path: Path, *, ready: Callable[[str, Path], None] | None) -> int:
    """Run the worker and the API on prepared databases until a signal or a child's death."""
    from sisu_kodo.oc.daemon import DaemonError, start_daemon, stop_daemon

    assert settings.topology.database_url
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
    stop_requested = False

    def request_stop(signum: int, _: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    env = {**os.environ, "DATABASE_URL": settings.topology.database_url}
    logs = settings.topology.resolved_data_dir / "logs"
    children: list[Child] = []
    opencode_started = False
    try:
        if settings.planner.oc_mode is not OcMode.REPLAY:
            try:
                opencode_started = start_daemon(settings).started
            except DaemonError as exc:
                raise StackError(f"OpenCode: {exc}") from exc
        worker = spawn_role("worker", env, logs / "worker.log")
        children.append(worker)
        api = spawn_role("api", env, logs / "api.log")
        children.append(api)
        base = f"http://{settings.topology.host}:{settings.topology.port}"
        wait_healthy(
            f"http://{settings.topology.host}:{settings.topology.admin_port}/healthz",
            child=worker,
            timeout=60,
        )
        wait_healthy(f"{base}/healthz", child=api, timeout=60, check_worker=True)
        if ready is not None:
            ready(base, logs)
        # Supervision, not a wait with a deadline: it ends on a signal or a dead child.
        while not stop_requested:
            for child in children:
                if child.process.poll() is not None:
                    raise StackError(
                        f"{child.name} exited with {child.process.returncode}; see {child.log_path}"
                    )
            time.sleep(0.3)
        return 0
    finally:
        terminate(children)
        if opencode_started:
            stop_daemon(settings)
        path.unlink(missing_ok=True)


def stop_stack(settings: Settings, grace: float = STOP_GRACE_SECONDS * 2) -> int | None:
    """Signal the running `sisu up` and wait for it to exit; returns its pid or None."""
    path = pid_file(settings)
    pid = read_live_pid(path)
    if pid is None:
        path.unlink(missing_ok=True)
        return None
    # `sisu up` removes its pid file last, once everything it started has stopped.
    if not stop_pid(pid, grace=grace, stopped=lambda: read_live_pid(path) != pid):
        raise StackError(f"sisu up (pid {pid}) did not stop within {grace:.0f}s")
    return pid
