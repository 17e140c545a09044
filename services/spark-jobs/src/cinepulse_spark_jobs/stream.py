"""The streaming queries: Kafka -> PostgreSQL star schema, with ``foreachBatch``.

* ``events``: the user-event topics -> staging, ``dim_user``/``dim_date``, the four facts
  and the quarantine.
* ``movies``: the ``movie`` topic -> ``dim_movie`` (SCD type 1), genres, keywords,
  companies and their bridges.

Each micro-batch is transformed by :mod:`cinepulse_spark_jobs.transforms` and written by the
shared load step (:mod:`cinepulse_common.warehouse`) in **one PostgreSQL transaction** with
idempotent keys (``event_id``; the quarantine's source position; the movie id), so a
micro-batch replayed after a crash, or every record again after the checkpoint is deleted,
writes nothing twice. Each query has its own checkpoint folder under ``checkpoint_dir``; a
restart resumes from it.

Two guards against losing data silently:

* Kafka is read with ``failOnDataLoss=true``: offsets the query still needs that are gone
  (removed by retention while the query was down, or a topic deleted and recreated) stop the
  query with Spark's data-loss error instead of being skipped. The driver logs the recovery
  (:data:`DATA_LOSS_RECOVERY`; docs/operations/reliability.md): replay the gap from the
  MongoDB archive with ``cinepulse-fallback replay``.
* The events query's landing tables are shared by every driver: the landing and the load of
  a micro-batch run under a PostgreSQL advisory lock (:func:`landing_lock`), so a second
  driver (a zombie, or ``--available-now`` beside the stream) waits instead of truncating
  the tables under the first one's batch.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from cinepulse_common import topics
from cinepulse_common.kafka import spark_kafka_options
from cinepulse_common.logging import get_logger
from cinepulse_common.postgres import connect
from cinepulse_common.rules import TransformRules
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.validation import UUID_PATTERN, event_reasons, rule_code
from cinepulse_common.warehouse import (
    QUARANTINE_COLUMNS,
    ensure_batch_tables,
    load_events,
    load_events_from_tables,
    load_movies,
)
from cinepulse_spark_jobs import metrics
from cinepulse_spark_jobs.session import jdbc_options
from cinepulse_spark_jobs.settings import SparkJobsSettings
from cinepulse_spark_jobs.transforms import (
    assign_event_ids,
    deduplicate_events,
    full_match,
    label_comments,
    latest_movies,
    model_events,
    model_movies,
    normalise_event_types,
    normalise_events,
    parse_events,
    parse_movies,
    split_valid,
    validate_events,
    validate_movies,
)

log = get_logger(__name__)

SOURCE_FLAG = "spark"
#: the events query's landing tables (``spark_batch_events``, ``spark_batch_quarantine``)
LANDING = "spark_batch"
EVENTS, MOVIES = "events", "movies"
QUERIES = (EVENTS, MOVIES)
#: what to do when a query stops on Spark's data-loss error (logged by the driver)
DATA_LOSS_RECOVERY = (
    "Kafka no longer holds offsets this query has not processed (retention removed them, or "
    "the topic was recreated). The archiver kept the records in MongoDB: replay the gap with "
    "`cinepulse-fallback replay --from <last batch written> --to <first record still in "
    "Kafka>` (idempotent), then restart the query from the records Kafka still holds (move "
    "its checkpoint aside). See docs/operations/reliability.md."
)
#: seconds between two attempts at the landing lock held by another driver
LANDING_LOCK_POLL_S = 0.5


def is_data_loss(error: object) -> bool:
    """Whether a query's exception is the Kafka source's data-loss stop."""
    text = str(error)
    # Spark's message names the option; newer versions also carry an error class
    # (KAFKA_DATA_LOSS.*); an out-of-range fetch is the same loss seen by the consumer
    markers = ("failOnDataLoss", "KAFKA_DATA_LOSS", "OffsetOutOfRange")
    return any(m in text for m in markers) or "data loss" in text.lower()


def landing_lock_key(name: str) -> int:
    """The advisory-lock key (a signed 64-bit integer) of the landing tables ``name``."""
    digest = hashlib.sha256(f"cinepulse.landing:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_lock(conn: Any, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


class LandingLockLost(RuntimeError):
    """The landing lock's connection no longer holds it (the connection dropped: PostgreSQL
    released the lock, and another driver may have emptied the landing tables since)."""


def lock_held(conn: Any, key: int, pid: int) -> bool:
    """Whether backend ``pid`` holds the session advisory lock ``key`` (asked on any
    connection ``conn``: a bigint key is split into classid = high 32 bits, objid = low 32
    bits, objsubid 1 in ``pg_locks``)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 1 AND pid = %s)",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF, pid),
    ).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class LandingLock:
    """The landing lock held: its tables, key and the backend pid of its connection."""

    name: str
    key: int
    pid: int

    def check(self, conn: Any) -> None:
        """Raise :class:`LandingLockLost` unless the lock's connection still holds it.
        Asked on ``conn`` (any connection): inside the load's transaction, after it read the
        landing tables and before it commits, a lock still held means no other driver
        emptied them since it was taken (and one that takes it later waits for the
        commit: its TRUNCATE needs the tables the transaction read)."""
        if not lock_held(conn, self.key, self.pid):
            raise LandingLockLost(
                f"the landing lock of {self.name!r} was lost (its connection, backend pid "
                f"{self.pid}, dropped): another driver may have replaced the landing tables; "
                "failing the batch (Spark runs it again from its checkpoint)"
            )


@contextmanager
def landing_lock(settings: PostgresSettings, name: str) -> Iterator[LandingLock]:
    """Hold the session advisory lock of the landing tables ``name`` (on a connection of its
    own, for the landing over JDBC and the load): another driver waits here until it is
    released. A driver that dies releases it with its connection. Polled (not a blocking
    ``pg_advisory_lock``) so the wait is logged and no statement timeout cuts it short.
    The lock lives on an idle connection: the caller checks it is still held
    (:meth:`LandingLock.check`) before it relies on it."""
    key = landing_lock_key(name)
    with connect(settings, autocommit=True) as conn:
        waited_since: float | None = None
        logged = 0.0
        while not _try_lock(conn, key):
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
            if now - logged >= 60:
                log.warning(
                    "another driver holds the landing tables; waiting",
                    landing=name,
                    waited_s=round(now - waited_since, 1),
                )
                logged = now
            time.sleep(LANDING_LOCK_POLL_S)
        try:
            yield LandingLock(name, key, conn.info.backend_pid)
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.OperationalError as exc:  # not to hide the batch's own error
                log.warning(
                    "the landing lock's connection is gone (it released the lock)",
                    landing=name,
                    error=str(exc)[:300],
                )


def transform_events(
    batch: DataFrame, rules: TransformRules, *, cache: bool = False
) -> tuple[DataFrame, DataFrame]:
    """Parsed Kafka records -> (modelled events, quarantined records), the whole
    transform: the pandas fallback runs functions of the same names in the same order.
    ``cache``: keep the validated rows in memory, so the two outputs share one validation
    pass (the caller unpersists them with :func:`uncache`)."""
    validated = validate_events(normalise_event_types(assign_event_ids(batch), rules), rules)
    if cache:
        validated = validated.persist()
    valid, quarantined = split_valid(validated)
    modelled = label_comments(normalise_events(deduplicate_events(valid, rules), rules))
    return modelled, quarantined


def _quarantine_rows(quarantined: DataFrame) -> DataFrame:
    return quarantined.select(
        # only a real UUID reaches the uuid column (anything else would fail the load)
        F.when(full_match(F.col("event_id"), UUID_PATTERN), F.col("event_id")).alias("event_id"),
        F.col("event_type"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        # the record as read, with any NUL escaped (PostgreSQL text cannot hold one)
        F.regexp_replace(F.coalesce(F.col("raw"), F.lit("")), "\\x00", "\\\\u0000").alias("raw"),
        F.coalesce(F.col("quarantine_rule"), F.lit("invalid")).alias("rule"),
        F.col("quarantine_reason").alias("reason"),
    )


def _record(query: str, written: dict[str, int], rules_seen: Counter[str]) -> None:
    for table, n in written.items():
        metrics.ROWS.labels(query, table).inc(n)
    for rule, n in rules_seen.items():
        metrics.QUARANTINED.labels(query, rule).inc(n)


def land_events(
    modelled: DataFrame,
    quarantined: DataFrame,
    settings: SparkJobsSettings,
    landing: tuple[str, str],
) -> None:
    """The modelled events and the quarantined records into the (emptied) landing tables,
    over JDBC from the executors: batched INSERTs, no round trip through the driver's
    Python. (COPY from the executors, foreachPartition with psycopg, was measured no faster
    at 30,000 events: bench/spark_profile.py.)"""
    jdbc = jdbc_options(settings.postgres)
    jdbc["url"] += "?stringtype=unspecified&reWriteBatchedInserts=true"
    for frame, table in (
        (model_events(modelled, "is_late"), landing[0]),
        (_quarantine_rows(quarantined).select(*QUARANTINE_COLUMNS), landing[1]),
    ):
        frame.write.format("jdbc").options(**jdbc).option("dbtable", table).option(
            "batchsize", "10000"
        ).mode("append").save()


def process_events_batch(
    batch: DataFrame, batch_id: int, settings: SparkJobsSettings, rules: TransformRules
) -> dict[str, int]:
    started = time.monotonic()
    # a micro-batch spans every partition of four topics; a few larger tasks cost less than
    # many small ones (each Python UDF stage pays per task)
    batch = batch.coalesce(settings.batch_partitions)
    modelled, quarantined = transform_events(batch, rules, cache=True)
    # 1. land the batch over JDBC from the executors (no round trip through the driver's
    # Python) into UNLOGGED landing tables, emptied first: a replayed batch lands again.
    # Under the landing lock until the load is done: another driver waits
    with landing_lock(settings.postgres, LANDING) as lock:
        with connect(settings.postgres, autocommit=True) as conn:
            lock.check(conn)
            landing = ensure_batch_tables(conn, LANDING)
            conn.execute(sql.SQL("TRUNCATE {}, {}").format(*map(sql.Identifier, landing)))
        land_events(modelled, quarantined, settings, landing)
        t_landed = time.monotonic()
        batch.sparkSession.catalog.clearCache()
        # 2. one transaction: staging, dimensions, facts, quarantine (idempotent keys)
        # the lock checked after the load read the landing tables, before it commits
        with connect(settings.postgres) as conn:
            written = load_events_from_tables(
                conn, LANDING, source_flag=SOURCE_FLAG, dedup=rules.dedup
            )
            lock.check(conn)
    t_load = time.monotonic()
    late = written.pop("late", 0)
    rules_seen = Counter(
        {k.split(":", 1)[1]: written.pop(k) for k in [k for k in written if ":" in k]}
    )
    _record(EVENTS, written, rules_seen)
    metrics.LATE.labels(EVENTS).inc(late)
    log.info(
        "events batch written",
        batch_id=batch_id,
        seconds=round(time.monotonic() - started, 3),
        spark_s=round(t_landed - started, 3),
        load_s=round(t_load - t_landed, 3),
        quarantined=sum(rules_seen.values()),
        late=late,
        **written,
    )
    return written


def process_movies_batch(
    batch: DataFrame, batch_id: int, settings: SparkJobsSettings, rules: TransformRules
) -> dict[str, int]:
    validated = validate_movies(batch)
    valid, quarantined = split_valid(validated)
    rows = model_movies(latest_movies(valid), rules)
    movies = [tuple(r) for r in rows.collect()]
    held = [
        tuple(r)
        for r in _quarantine_rows(
            quarantined.withColumn("event_id", F.lit(None).cast("string")).withColumn(
                "event_type", F.lit(None).cast("string")
            )
        )
        .select(*QUARANTINE_COLUMNS)
        .collect()
    ]
    rules_seen = Counter(str(q[QUARANTINE_COLUMNS.index("rule")]) for q in held)
    with connect(settings.postgres) as conn:
        written = load_movies(conn, movies, source_flag=SOURCE_FLAG)
        written |= load_events(conn, (), held, source_flag=SOURCE_FLAG)
    _record(MOVIES, written, rules_seen)
    log.info("movies batch written", batch_id=batch_id, **written)
    return written


def _source(
    spark: SparkSession, settings: SparkJobsSettings, names: list[str], max_offsets: int
) -> DataFrame:
    k = settings.kafka
    if k is None:  # __main__ refuses to start the stream without it
        raise ValueError("the streaming job needs Kafka settings (CINEPULSE_KAFKA__*)")
    reader = spark.readStream.format("kafka")
    # the brokers and, for a secured Kafka, the protocol, SASL mechanism and JAAS login
    for key, value in spark_kafka_options(k).items():
        reader = reader.option(key, value)
    return (
        reader.option("subscribe", ",".join(k.topic(t) for t in names))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(max_offsets))
        # offsets gone from Kafka before they were processed stop the query (never skipped)
        .option("failOnDataLoss", "true")
        .load()
    )


def start_stream(
    spark: SparkSession,
    settings: SparkJobsSettings,
    rules: TransformRules,
    query: str = EVENTS,
    *,
    available_now: bool = False,
    max_offsets_per_trigger: int | None = None,
) -> StreamingQuery:
    """Start one query (``events`` or ``movies``); its checkpoint is
    ``checkpoint_dir/<query>``."""
    if query == EVENTS:
        parsed = parse_events(
            _source(
                spark,
                settings,
                list(topics.USER_EVENT_TOPICS),
                max_offsets_per_trigger or settings.max_offsets_per_trigger,
            )
        )
        process = process_events_batch
        # every rule code of the catalogue, and "invalid" (a record without one)
        codes = {rule_code(reason) for reason in event_reasons(rules).values()} | {"invalid"}
        metrics.count_quarantine_rules(EVENTS, sorted(codes))
    elif query == MOVIES:
        parsed = parse_movies(
            _source(
                spark,
                settings,
                [topics.MOVIE],
                max_offsets_per_trigger or settings.max_offsets_per_trigger,
            )
        )
        process = process_movies_batch
    else:
        raise ValueError(f"unknown query {query!r}; one of {', '.join(QUERIES)}")

    def each(df: DataFrame, batch_id: int) -> None:
        process(df, batch_id, settings, rules)

    writer = (
        parsed.writeStream.queryName(query)
        .option("checkpointLocation", str(settings.checkpoint_dir / query))
        .foreachBatch(each)
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    elif settings.trigger_interval_s:
        writer = writer.trigger(processingTime=f"{settings.trigger_interval_s} seconds")
    return writer.start()
