"""One way for every process to open its databases and release them again.

`open_databases` resolves the URLs (DATABASE_URL, else the embedded server under
SISU_DATA_DIR, started if needed; DBOS_SYSTEM_DATABASE_URL defaults to DATABASE_URL),
hands out engines, and on exit disposes of them and stops an embedded server it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import sqlalchemy as sa

from sisu_kodo.config import ConfigError, Settings
from sisu_kodo.db.bootstrap import prepare_databases
from sisu_kodo.db.embedded import EmbeddedPostgres, require_installed
from sisu_kodo.db.engine import create_engine


class Databases:
    """Resolved database URLs, and the engines opened on them (disposed on exit)."""

    def __init__(self, settings: Settings, resources: ExitStack) -> None:
        assert settings.topology.database_url, "open_databases resolves the URL"
        self.settings = settings
        self.url: str = settings.topology.database_url
        self.system_url: str = (
            settings.topology.system_database_url or settings.topology.database_url
        )
        self._resources = resources

    def engine(self, *, system: bool = False, **options: Any) -> sa.Engine:
        """An engine on the app (or system) database, disposed when the databases close."""
        engine = create_engine(self.system_url if system else self.url, **options)
        self._resources.callback(engine.dispose)
        return engine

    def prepare(self, engine: sa.Engine | None = None) -> None:
        """Migrate schema `app` and DBOS's system schema, on `engine` or a short-lived one."""
        if engine is not None:
            prepare_databases(engine, self.system_url)
            return
        once = create_engine(self.url, pool_size=1)
        try:
            prepare_databases(once, self.system_url)
        finally:
            once.dispose()


@contextmanager
def open_databases(settings: Settings, *, start: bool = True) -> Iterator[Databases]:
    """The databases of `settings`; with `start=False` an embedded server is only attached to.

    Raises:
        ConfigError: DATABASE_URL is unset and the embedded server is not installed, or
            (with `start=False`) not running.
    """
    with ExitStack() as resources:
        if settings.topology.database_url:
            yield Databases(settings, resources)
            return
        require_installed()
        embedded = EmbeddedPostgres(settings.topology.resolved_data_dir / "pg")
        if not start and not embedded.is_running():
            raise ConfigError(
                "DATABASE_URL is unset and the embedded PostgreSQL under"
                f" {embedded.data_dir} is not running; start it with `sisu up`"
            )
        url = embedded.start()
        resources.callback(embedded.stop)
        yield Databases(settings.with_overrides(database_url=url), resources)
