"""The warehouse (PostgreSQL), as the api reads it: one async pool of read-only sessions per
process, each query timed and counted under its name (:mod:`cinepulse_api.adapters.queries`),
and the days of each window."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import psycopg
from fastapi import HTTPException
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cinepulse_api.adapters import queries
from cinepulse_api.metrics import DB_ERRORS, DB_POOL_WAIT_SECONDS, DB_QUERY_SECONDS
from cinepulse_common.postgres import make_async_pool
from cinepulse_common.settings import PostgresSettings

#: days in each window, today included (``all``: no bound)
WINDOW_DAYS: dict[str, int | None] = {"day": 1, "week": 7, "month": 30, "all": None}


def window_bounds(window: str, today: date) -> tuple[date | None, date | None]:
    """``(first, last)`` day of the window ending ``today`` (inclusive); ``all`` is open at
    both ends (``None``), as ``analytics.movie_window`` takes it."""
    days = WINDOW_DAYS[window]
    if days is None:
        return None, None
    return today - timedelta(days=days - 1), today


async def _read_only_session(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every statement is its own read-only transaction: no BEGIN and ROLLBACK round trips
    around each query (the pool rolls back a connection returned inside a transaction), and
    the api cannot write even by mistake."""
    await conn.set_autocommit(True)
    await conn.execute("SET default_transaction_read_only = on")


#: the query histogram's children by query name (a label lookup takes a lock: hot path)
_QUERY_TIMERS: dict[str, Any] = {}


class Warehouse:
    """The pool (opened and closed in the app's lifespan) and the queries run on it."""

    def __init__(
        self, postgres: PostgresSettings, *, pool_timeout_s: float, readiness_timeout_s: float
    ) -> None:
        self.readiness_timeout_s = readiness_timeout_s
        self.pool: AsyncConnectionPool = make_async_pool(
            postgres, timeout=pool_timeout_s, configure=_read_only_session
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; the wait for it is measured."""
        start = time.perf_counter()
        async with self.pool.connection() as conn:
            DB_POOL_WAIT_SECONDS.observe(time.perf_counter() - start)
            yield conn

    async def fetch(
        self,
        query: queries.Query,
        params: dict[str, Any],
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of one query (on ``conn``, or a pooled connection of its own), timed
        into ``cinepulse_api_db_query_duration_seconds{query=<name>}``."""
        if conn is None:
            async with self.connection() as own:
                return await self.fetch(query, params, own)
        timer = _QUERY_TIMERS.get(query.name)
        if timer is None:
            timer = _QUERY_TIMERS[query.name] = DB_QUERY_SECONDS.labels(query.name)
        start = time.perf_counter()
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query.sql, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            DB_ERRORS.labels(query.name, type(exc).__name__).inc()
            raise
        finally:
            timer.observe(time.perf_counter() - start)

    async def genre_ids(
        self, genre: str | None, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[int] | None:
        if genre is None:
            return None
        rows = await self.fetch(queries.GENRE_IDS, {"genre": genre}, conn)
        if not rows:
            raise HTTPException(404, f"unknown genre {genre!r}")
        return [r["genre_id"] for r in rows]

    async def check(self) -> None:
        async with self.pool.connection(timeout=self.readiness_timeout_s) as conn:
            await conn.execute("SELECT 1")
