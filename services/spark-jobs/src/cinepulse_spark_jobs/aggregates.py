"""The daily aggregates the api reads (a batch Spark job: a SparkApplication, or Airflow).

Which days: an explicit range, or every day whose facts changed since the last successful
run (``ingested_at`` after that run started, less a margin for transactions
that were open then; ``aggregate_margin_s``) - so late events and promoted fallback runs reach their own days. The
first run takes every day there is.

The facts of those days are read over JDBC, aggregated by Spark
(:func:`daily_movie`, :func:`daily_activity`, :func:`daily_emotions`: pure functions over
DataFrames), and written in one transaction: the days' old rows deleted, the new ones
COPYed, the run recorded in ``agg_runs``. A failed run changes nothing but its own record.

One run at a time, whoever schedules it (the Airflow DAG ``daily_aggregates``, the chart's
ScheduledSparkApplication, a person): a run holds the PostgreSQL session advisory lock
:data:`LOCK_KEY` from before it records itself in ``agg_runs`` until it ends (a driver that
dies releases it with its connection). A second run waits up to ``lock_wait_s`` (default 0:
not at all), then raises :class:`AggregatesLocked` without touching anything - the command
exits :data:`EXIT_LOCKED` (3) with a message naming the holder's backend pid. Airflow retries
that exit code with its backoff; the days the second run would have taken are still
"changed" for the next run, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cinepulse_common.logging import get_logger
from cinepulse_common.postgres import connect
from cinepulse_spark_jobs.session import jdbc_options
from cinepulse_spark_jobs.settings import SparkJobsSettings

log = get_logger(__name__)

JOB = "daily_aggregates"
SOURCE_FLAG = "spark"

#: the session advisory lock one aggregates run holds (a signed 64-bit key)
LOCK_KEY = int.from_bytes(
    hashlib.sha256(f"cinepulse.aggregates:{JOB}".encode()).digest()[:8], "big", signed=True
)
LOCK_POLL_S = 1.0
#: the command's exit code when another run holds the lock
EXIT_LOCKED = 3


class AggregatesLocked(RuntimeError):
    """Another aggregates run holds :data:`LOCK_KEY` (and did not release it in time)."""


def _lock_holder(conn: Any) -> int | None:
    """The backend pid holding :data:`LOCK_KEY`, if visible (a bigint advisory key is split
    into classid = high 32 bits, objid = low 32 bits, objsubid 1 in ``pg_locks``)."""
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 1 LIMIT 1",
        ((LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()
    return int(row[0]) if row else None


def acquire_lock(conn: Any, wait_s: float = 0.0) -> None:
    """Take :data:`LOCK_KEY` on ``conn`` (a session lock: held until released or the
    connection closes), polling up to ``wait_s``; :class:`AggregatesLocked` after that."""
    deadline = time.monotonic() + wait_s
    logged = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AggregatesLocked(
                f"another {JOB} run holds the lock (PostgreSQL advisory lock {LOCK_KEY},"
                f" backend pid {_lock_holder(conn)}); waited {wait_s:g}s: not running"
            )
        if not logged:
            log.info("waiting for the aggregates lock", holder=_lock_holder(conn), wait_s=wait_s)
            logged = True
        time.sleep(min(LOCK_POLL_S, remaining))


#: per fact: (event type, the columns the aggregates need beyond the common ones)
FACTS: dict[str, tuple[str, str]] = {
    "fact_watch": (
        "watch",
        "least(position_seconds, duration_seconds) AS watch_seconds, completed",
    ),
    "fact_rating": ("rate", "rating"),
    "fact_comment": ("comment", "emotion, sentiment"),
    "fact_click": ("click", "NULL::text AS target"),
}
MOVIE_DAILY_COLUMNS = (
    "date_key",
    "movie_id",
    "events",
    "users",
    "watches",
    "completed_watches",
    "watch_seconds",
    "ratings",
    "rating_sum",
    "rating_histogram",
    "comments",
    "sentiment_sum",
    "clicks",
)
ACTIVITY_COLUMNS = ("date_key", "event_type", "events", "users", "movies")
EMOTION_COLUMNS = ("date_key", "movie_id", "emotion", "comments", "sentiment_sum")


@dataclass
class Summary:
    run_id: int
    dates: int
    date_from: date | None
    date_to: date | None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return json.dumps(
            {
                "job": JOB,
                "run_id": self.run_id,
                "dates": self.dates,
                "from": self.date_from and self.date_from.isoformat(),
                "to": self.date_to and self.date_to.isoformat(),
                "rows": self.rows,
                "seconds": round(self.seconds, 2),
            }
        )


def _key(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _date(key: int) -> date:
    return date(key // 10000, key // 100 % 100, key % 100)


def changed_dates(
    conn: Any, date_from: date | None, date_to: date | None, margin: timedelta
) -> list[int]:
    """The date keys to recompute (sorted)."""
    if date_from is not None and date_to is not None:
        days = (date_to - date_from).days
        return [_key(date_from + timedelta(days=i)) for i in range(days + 1)]
    last = conn.execute(
        "SELECT max(started_at) FROM agg_runs WHERE job = %s AND status = 'succeeded'", (JOB,)
    ).fetchone()[0]
    union = sql.SQL(" UNION ").join(
        sql.SQL("SELECT DISTINCT date_key FROM {} WHERE ingested_at >= %(since)s").format(
            sql.Identifier(t)
        )
        if last is not None
        else sql.SQL("SELECT DISTINCT date_key FROM {}").format(sql.Identifier(t))
        for t in FACTS
    )
    params = {"since": last - margin} if last is not None else {}
    return sorted(r[0] for r in conn.execute(union, params).fetchall())


def read_facts(spark: SparkSession, settings: SparkJobsSettings, keys: Sequence[int]) -> DataFrame:
    """The facts of those days, as one frame (event_type, date_key, movie_id, user_id and
    the measures), read over JDBC and split by date_key across the cores."""
    lo, hi = min(keys), max(keys)
    frames = []
    for table, (event_type, measures) in FACTS.items():
        query = (
            f"SELECT '{event_type}'::text AS event_type, date_key, movie_id, user_id, {measures} "
            f"FROM {table} WHERE date_key BETWEEN {lo} AND {hi}"
        )
        frame = (
            spark.read.format("jdbc")
            .options(**jdbc_options(settings.postgres))
            .option("dbtable", f"({query}) AS f")
            .option("partitionColumn", "date_key")
            .option("lowerBound", str(lo))
            .option("upperBound", str(hi + 1))
            .option("numPartitions", "2")
            .option("fetchsize", "10000")
            .load()
        )
        frames.append(frame)
    events = frames[0].unionByName(frames[1], allowMissingColumns=True)
    for frame in frames[2:]:
        events = events.unionByName(frame, allowMissingColumns=True)
    wanted = spark.createDataFrame([(k,) for k in keys], "date_key int")
    return events.join(F.broadcast(wanted), "date_key")


def daily_movie(events: DataFrame) -> DataFrame:
    etype = F.col("event_type")

    def count_of(kind: str) -> Any:
        return F.count(F.when(etype == kind, 1))

    main = events.groupBy("date_key", "movie_id").agg(
        F.count(F.lit(1)).alias("events"),
        F.countDistinct("user_id").alias("users"),
        count_of("watch").alias("watches"),
        F.count(F.when(F.col("completed"), 1)).alias("completed_watches"),
        F.coalesce(F.sum("watch_seconds"), F.lit(0)).cast("decimal(16,2)").alias("watch_seconds"),
        count_of("rate").alias("ratings"),
        F.coalesce(F.sum("rating"), F.lit(0)).cast("decimal(14,1)").alias("rating_sum"),
        count_of("comment").alias("comments"),
        F.coalesce(F.sum("sentiment"), F.lit(0.0)).cast("double").alias("sentiment_sum"),
        count_of("click").alias("clicks"),
    )
    histogram = (
        events.filter(etype == "rate")
        .groupBy("date_key", "movie_id", F.col("rating").cast("string").alias("r"))
        .count()
        .groupBy("date_key", "movie_id")
        .agg(
            F.to_json(F.map_from_entries(F.collect_list(F.struct("r", "count")))).alias(
                "rating_histogram"
            )
        )
    )
    return (
        main.join(histogram, ["date_key", "movie_id"], "left")
        .withColumn("rating_histogram", F.coalesce("rating_histogram", F.lit("{}")))
        .select(*MOVIE_DAILY_COLUMNS)
    )


def daily_activity(events: DataFrame) -> DataFrame:
    return (
        events.groupBy("date_key", "event_type")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.countDistinct("user_id").alias("users"),
            F.countDistinct("movie_id").alias("movies"),
        )
        .select(*ACTIVITY_COLUMNS)
    )


def daily_emotions(events: DataFrame) -> DataFrame:
    return (
        events.filter((F.col("event_type") == "comment") & F.col("emotion").isNotNull())
        .groupBy("date_key", "movie_id", "emotion")
        .agg(
            F.count(F.lit(1)).alias("comments"),
            F.sum("sentiment").cast("double").alias("sentiment_sum"),
        )
        .select(*EMOTION_COLUMNS)
    )


def _replace(
    cur: Any, table: str, columns: Sequence[str], keys: Sequence[int], rows: Iterable[Any]
) -> int:
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE date_key = ANY(%s)").format(sql.Identifier(table)),
        (list(keys),),
    )
    n = 0
    with cur.copy(
        sql.SQL("COPY {} ({}, source_flag) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
    ) as copy:
        for row in rows:
            copy.write_row((*row, SOURCE_FLAG))
            n += 1
    return n


def run_aggregates(
    spark: SparkSession,
    settings: SparkJobsSettings,
    date_from: date | None = None,
    date_to: date | None = None,
    lock_wait_s: float = 0.0,
) -> Summary:
    started = time.monotonic()
    with connect(settings.postgres, autocommit=True) as conn:
        acquire_lock(conn, lock_wait_s)
        try:
            summary = _run_locked(spark, settings, conn, date_from, date_to)
        finally:
            # a broken connection released it already; its error is the one to raise
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    summary.seconds = time.monotonic() - started
    log.info("aggregates done", **json.loads(summary.line()))
    return summary


def _run_locked(
    spark: SparkSession,
    settings: SparkJobsSettings,
    conn: Any,
    date_from: date | None,
    date_to: date | None,
) -> Summary:
    row = conn.execute(
        "INSERT INTO agg_runs (job, date_from, date_to) VALUES (%s, %s, %s) RETURNING run_id",
        (JOB, date_from, date_to),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    try:
        margin = timedelta(seconds=settings.aggregate_margin_s)
        keys = changed_dates(conn, date_from, date_to, margin)
        summary = Summary(
            run_id,
            len(keys),
            _date(keys[0]) if keys else date_from,
            _date(keys[-1]) if keys else date_to,
        )
        log.info("aggregating", run_id=run_id, dates=len(keys))
        if keys:
            events = read_facts(spark, settings, keys).persist()
            outputs = {
                "agg_movie_daily": (daily_movie(events), MOVIE_DAILY_COLUMNS),
                "agg_daily_activity": (daily_activity(events), ACTIVITY_COLUMNS),
                "agg_emotion_daily": (daily_emotions(events), EMOTION_COLUMNS),
            }
            with conn.transaction(), conn.cursor() as cur:
                for table, (frame, columns) in outputs.items():
                    rows = (tuple(r) for r in frame.toLocalIterator(prefetchPartitions=True))
                    summary.rows[table] = _replace(cur, table, columns, keys, rows)
                    log.info("aggregate written", table=table, rows=summary.rows[table])
                cur.execute(
                    "UPDATE agg_runs SET status = 'succeeded', finished_at = now(), dates = %s,"
                    " date_from = %s, date_to = %s, rows_written = %s WHERE run_id = %s",
                    (
                        len(keys),
                        summary.date_from,
                        summary.date_to,
                        json.dumps(summary.rows),
                        run_id,
                    ),
                )
            events.unpersist()
        else:
            conn.execute(
                "UPDATE agg_runs SET status = 'succeeded', finished_at = now() WHERE run_id = %s",
                (run_id,),
            )
    except BaseException as exc:
        conn.execute(
            "UPDATE agg_runs SET status = 'failed', finished_at = now(), error = %s "
            "WHERE run_id = %s",
            (str(exc)[:2000], run_id),
        )
        raise
    return summary
