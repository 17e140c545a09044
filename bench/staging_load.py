"""Staging load into the real PostgreSQL: the idempotent upsert path
(``INSERT ... ON CONFLICT (event_id) DO NOTHING``, what every loader uses so a replay writes
nothing twice) against the sink ceiling, ``COPY`` of the same rows into the same table, in
one run. The ratio says what idempotency costs at the sink."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.report import Figure, Table
from cinepulse_devstack import Stack
from cinepulse_migrations.cli import upgrade

#: the stack components this benchmark needs
STACK = ["postgres"]
N_ROWS = 20_000
REPEATS = 3
COLUMNS = [
    "event_id",
    "event_type",
    "user_id",
    "movie_id",
    "occurred_at",
    "payload",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_flag",
]


def _rows() -> list[tuple[object, ...]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        (
            uuid.uuid4(),
            "rate",
            f"user-{i % 610}",
            1 + i % 3000,
            t0 + timedelta(seconds=i),
            Jsonb({"rating": 0.5 + (i % 10) / 2}),
            "user_rating_log",
            i % 3,
            i,
            "bench",
        )
        for i in range(N_ROWS)
    ]


def _copy(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY stg_user_logs ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            )
        ) as copy,
    ):
        for r in rows:
            copy.write_row(r)


def _upsert(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    query = sql.SQL(
        "INSERT INTO stg_user_logs ({}) VALUES ({}) ON CONFLICT (event_id) DO NOTHING"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
    )
    with conn.cursor() as cur:
        cur.executemany(query, rows)


def run(stack: Stack) -> Table:
    db = "cinepulse_bench"
    dsn = stack.postgres.create_database(db, replace=True)
    upgrade(dsn, "head")
    rows = _rows()
    timings: dict[str, list[float]] = {"copy": [], "upsert": [], "upsert replay": []}
    with psycopg.connect(dsn) as conn:
        for _ in range(REPEATS):  # interleaved, so drift hits both alike
            for name, fn in (("copy", _copy), ("upsert", _upsert)):
                conn.execute("TRUNCATE stg_user_logs CASCADE")
                conn.commit()
                t0 = time.perf_counter()
                fn(conn, rows)
                conn.commit()
                timings[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # the same rows again: every one a conflict
            _upsert(conn, rows)
            conn.commit()
            timings["upsert replay"].append(time.perf_counter() - t0)
            written = conn.execute("SELECT count(*) FROM stg_user_logs").fetchone()
            assert written is not None and written[0] == N_ROWS, written
    stack.postgres.drop_database(db)

    table = Table(f"Staging load into PostgreSQL ({N_ROWS:,} events, median of {REPEATS})", "path")
    by_path = {}
    for name, ts in timings.items():
        seconds = statistics.median(ts)
        by_path[name] = table.add(
            name,
            {
                "rows/s": Figure(N_ROWS / seconds, "rows/s", better="higher"),
                "time": Figure(seconds, "s", fmt=".2f"),
            },
            baseline=name == "copy",
            short={"copy": "COPY"}.get(name, name),
        )
    by_path["upsert"].compare("rows/s", by_path["copy"], headline=True)
    by_path["upsert replay"].compare("rows/s", by_path["copy"])
    table.notes.append(
        "copy: COPY FROM STDIN (the sink ceiling); upsert: psycopg executemany "
        "(pipelined) INSERT ... ON CONFLICT (event_id) DO NOTHING; upsert replay: "
        "the same rows again, all conflicts, nothing written"
    )
    return table
