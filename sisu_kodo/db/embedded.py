"""Embedded PostgreSQL for machines with no database configured.

The server binaries come from the `pgserver` wheel; the lifecycle is ours: the server
listens on TCP 127.0.0.1 (port chosen once and kept in the data folder), not on a Unix
socket, because DBOS 3.4 recognises lost-connection errors by their TCP wording only and
would not reconnect after a restart of a socket-only server.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from sisu_kodo.config import ConfigError, Settings

log = logging.getLogger(__name__)

PORT_FILE = "sisu-port"


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir`.

    `start()` attaches to a server already running there, or starts one and then owns it:
    `stop()` stops only a server this object started, unless `keep_running` is set.
    """

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self._keep_running = keep_running
        self._owned = False
        self._system_user: str | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        self._prepare_user()
        self._ensure_initialised()
        if self._running():
            self.port = int((self.data_dir / PORT_FILE).read_text())
            log.info("attached to embedded PostgreSQL on port %s", self.port)
            return self.url
        self.port = self._choose_port()
        log.info("starting embedded PostgreSQL in %s on 127.0.0.1:%s", self.pgdata, self.port)
        self._pg_ctl(
            "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {self.port} -k ''",
            "-l", str(self.data_dir / "postgres.log"),
            "start",
        )  # fmt: skip
        self._owned = True
        return self.url

    def restart(self) -> None:
        """Restart in place (same data and port); connected clients must reconnect."""
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "restart")

    def stop(self) -> None:
        if self._owned and not self._keep_running and self._running():
            self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")
        self._owned = False

    # ---- internals ----------------------------------------------------------------------

    def _prepare_user(self) -> None:
        """PostgreSQL refuses to run as root; as root, run it as pgserver's own user."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        import pwd

        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        self._system_user = "pgserver"
        ensure_user_exists(self._system_user)
        self.pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        account = pwd.getpwnam(self._system_user)
        for path in (self.data_dir, self.pgdata):
            os.chown(path, account.pw_uid, account.pw_gid)

    def _ensure_initialised(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        from pgserver._commands import initdb  # type: ignore[attr-defined]

        log.info("initialising embedded PostgreSQL data in %s", self.pgdata)
        initdb(
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=self.pgdata,
            user=self._system_user,
        )

    def is_running(self) -> bool:
        return self._running()

    def _running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists() or not (self.data_dir / PORT_FILE).exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def _choose_port(self) -> int:
        port_file = self.data_dir / PORT_FILE
        if port_file.exists():
            kept = int(port_file.read_text())
            if _port_free(kept):
                return kept
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        port_file.write_text(str(port))
        return port

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self._system_user, timeout=90)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def resolve_database(
    settings: Settings, *, start: bool = True
) -> tuple[Settings, EmbeddedPostgres | None]:
    """Settings with a usable DATABASE_URL: the configured one, or the embedded server's.

    With `start=False` the embedded server is only attached to, never started.
    """
    if settings.topology.database_url:
        return settings, None
    embedded = EmbeddedPostgres(settings.topology.resolved_data_dir / "pg")
    if not start and not embedded.is_running():
        raise ConfigError(
            "DATABASE_URL is unset and the embedded PostgreSQL under"
            f" {embedded.data_dir} is not running; start it with `sisu up`"
        )
    url = embedded.start()
    return settings.with_overrides(database_url=url), embedded
