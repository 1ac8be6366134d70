"""Embedded PostgreSQL (the `pgserver` wheel) for machines with no database configured."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sisu_kodo.config import Settings

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir`, reached through a Unix socket in that folder.

    The server lives as long as the process that started it (pgserver stops it at exit),
    unless `keep_running` is set.
    """

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        self.data_dir = data_dir
        self._keep_running = keep_running
        self._server: Any = None

    def start(self) -> str:
        from pgserver import get_server  # type: ignore[attr-defined]

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = get_server(
            self.data_dir, cleanup_mode=None if self._keep_running else "stop"
        )
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def resolve_database(settings: Settings) -> tuple[Settings, EmbeddedPostgres | None]:
    """Settings with a usable DATABASE_URL, starting the embedded server when none is set."""
    if settings.database_url:
        return settings, None
    embedded = EmbeddedPostgres(settings.resolved_data_dir / "pg")
    url = embedded.start()
    return settings.with_overrides(database_url=url), embedded
