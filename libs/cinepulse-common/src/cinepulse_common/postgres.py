"""PostgreSQL client factories (psycopg 3): one-off connections and async pools, each with
the service's application name and statement timeout set on every session."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from cinepulse_common.settings import PostgresSettings


def conninfo(s: PostgresSettings) -> str:
    return s.dsn.get_secret_value()


def _session_options(s: PostgresSettings) -> dict[str, Any]:
    return {
        "application_name": s.application_name,
        "options": f"-c statement_timeout={s.statement_timeout_ms}",
    }


def connect(s: PostgresSettings, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(conninfo(s), **(_session_options(s) | kwargs))


async def connect_async(s: PostgresSettings, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(conninfo(s), **(_session_options(s) | kwargs))


def _pool_options(s: PostgresSettings, **kwargs: Any) -> dict[str, Any]:
    options = {
        "min_size": s.pool_min_size,
        "max_size": s.pool_max_size,
        "kwargs": _session_options(s),
    }
    return options | kwargs


def make_pool(s: PostgresSettings, **kwargs: Any) -> ConnectionPool:
    return ConnectionPool(conninfo(s), open=True, **_pool_options(s, **kwargs))


def make_async_pool(s: PostgresSettings, **kwargs: Any) -> AsyncConnectionPool:
    """An unopened pool: ``await pool.open()`` in the app's lifespan."""
    return AsyncConnectionPool(conninfo(s), open=False, **_pool_options(s, **kwargs))


def check_postgres(s: PostgresSettings) -> None:
    with connect(s, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
