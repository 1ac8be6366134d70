"""Engines: one place that turns a PostgreSQL URL into a SQLAlchemy engine."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential


def sqlalchemy_url(url: str) -> str:
    """Pin the psycopg 3 driver whatever scheme the operator wrote."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(engine: sa.Engine) -> str:
    """The engine's database as a plain libpq URL, for a raw psycopg connection."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
    options.update(kwargs)
    return sa.create_engine(sqlalchemy_url(url), **options)


def _lost_connection(error: BaseException) -> bool:
    return isinstance(error, sa.exc.DBAPIError) and (
        error.connection_invalidated or isinstance(error, sa.exc.OperationalError)
    )


# For idempotent database work done outside DBOS's own reconnecting calls: while the
# database restarts, wait and try again (for up to a minute) instead of failing a run.
reconnecting = retry(
    retry=retry_if_exception(_lost_connection),
    wait=wait_exponential(multiplier=0.1, max=2),
    stop=stop_after_delay(60),
    reraise=True,
)


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return (
        make_url(sqlalchemy_url(url)).set(database=database).render_as_string(hide_password=False)
    )


def same_database(a: str, b: str) -> bool:
    return make_url(sqlalchemy_url(a)) == make_url(sqlalchemy_url(b))
