"""Schema lifecycle: apply the `app` migrations, seed reference rows, reset schemas."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from sisu_kodo.db import recipes

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# One constant key so concurrent starters (worker, API, CLI) migrate one at a time.
_MIGRATION_LOCK_KEY = 0x5150_4B44


def upgrade(engine: sa.Engine) -> None:
    """Bring schema `app` to the newest revision and upsert the seed rows (idempotent)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
            recipes.seed(conn)
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: sa.Connection) -> str | None:
    exists = conn.execute(sa.text("SELECT to_regclass('app.alembic_version')")).scalar()
    if exists is None:
        return None
    return conn.execute(sa.text("SELECT version_num FROM app.alembic_version")).scalar()


def reset_app_schema(engine: sa.Engine) -> None:
    """Drop schema `app` with everything in it, then migrate and seed again."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS app CASCADE"))
    upgrade(engine)


def reset_system_schema(engine: sa.Engine, schema: str = "dbos") -> None:
    """Drop DBOS's system schema; the next worker start recreates it."""
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
