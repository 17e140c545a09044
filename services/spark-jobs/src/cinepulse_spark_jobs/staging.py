"""Kafka user events -> PostgreSQL staging (``stg_user_logs``, ``stg_comments``) and
``quarantine``, as a Structured Streaming query with ``foreachBatch``.

Each micro-batch is written in one PostgreSQL transaction with ``ON CONFLICT DO NOTHING``
on the idempotency keys (``event_id``; the quarantine's source position), so a replayed
micro-batch - after a crash, or from the earliest offsets with the checkpoint gone - writes
nothing twice. The checkpoint (one folder per query) makes a restart resume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from psycopg.types.json import Jsonb
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from cinepulse_common import topics
from cinepulse_common.logging import get_logger
from cinepulse_common.postgres import connect
from cinepulse_common.rules import TransformRules
from cinepulse_spark_jobs import metrics
from cinepulse_spark_jobs.settings import SparkJobsSettings
from cinepulse_spark_jobs.transforms import (
    assign_event_ids,
    deduplicate_events,
    parse_events,
    split_valid,
    validate_events,
)

log = get_logger(__name__)

SOURCE_FLAG = "spark"
QUERY = "staging"

STG = """
INSERT INTO stg_user_logs (event_id, event_type, user_id, movie_id, occurred_at, received_at,
                           session_id, payload, source_topic, source_partition, source_offset,
                           source_flag)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""
COMMENTS = """
INSERT INTO stg_comments (event_id, user_id, movie_id, occurred_at, comment_text, source_flag)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""
QUARANTINE = """
INSERT INTO quarantine (event_id, event_type, source_topic, source_partition, source_offset,
                        raw, rule, reason, source_flag)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_topic, source_partition, source_offset, event_id) DO NOTHING
"""


def staged_rows(valid: DataFrame) -> DataFrame:
    return valid.select(
        "event_id",
        "event_type",
        "user_id",
        "movie_id",
        F.to_timestamp("occurred_at").alias("occurred_ts"),
        F.to_timestamp("received_at").alias("received_ts"),
        "session_id",
        F.get_json_object("raw", "$.payload").alias("payload_json"),
        F.col("payload.text").alias("comment_text"),
        "topic",
        "partition",
        "offset",
    )


def write_batch(
    settings: SparkJobsSettings, valid: Iterable[Any], quarantined: Iterable[Any]
) -> tuple[int, int]:
    """One transaction: staging rows and quarantine rows. Returns rows offered (valid,
    quarantined); conflicts (replays) write nothing."""
    import json
    import uuid

    stg, comments, quarantine = [], [], []
    for r in valid:
        stg.append(
            (
                r.event_id,
                r.event_type,
                r.user_id,
                r.movie_id,
                r.occurred_ts,
                r.received_ts,
                r.session_id,
                Jsonb(json.loads(r.payload_json)),
                r.topic,
                r.partition,
                r.offset,
                SOURCE_FLAG,
            )
        )
        if r.event_type == "comment":
            comments.append(
                (r.event_id, r.user_id, r.movie_id, r.occurred_ts, r.comment_text, SOURCE_FLAG)
            )
    for q in quarantined:
        try:
            event_id = str(uuid.UUID(q.event_id)) if q.event_id else None
        except ValueError:
            event_id = None
        quarantine.append(
            (
                event_id,
                q.event_type,
                q.topic,
                q.partition,
                q.offset,
                q.raw or "",
                q.quarantine_rule or "invalid",
                q.quarantine_reason,
                SOURCE_FLAG,
            )
        )
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        if stg:
            cur.executemany(STG, stg)
        if comments:
            cur.executemany(COMMENTS, comments)
        if quarantine:
            cur.executemany(QUARANTINE, quarantine)
    # counted once the transaction committed
    metrics.ROWS.labels(QUERY, "stg_user_logs").inc(len(stg))
    metrics.ROWS.labels(QUERY, "stg_comments").inc(len(comments))
    metrics.ROWS.labels(QUERY, "quarantine").inc(len(quarantine))
    for rule, n in Counter(q[6] for q in quarantine).items():
        metrics.QUARANTINED.labels(QUERY, rule).inc(n)
    return len(stg), len(quarantine)


def process_batch(
    batch: DataFrame, batch_id: int, settings: SparkJobsSettings, rules: TransformRules
) -> None:
    validated = validate_events(assign_event_ids(batch), rules)
    valid, quarantined = split_valid(validated)
    valid = deduplicate_events(valid)
    offered = write_batch(
        settings,
        staged_rows(valid).toLocalIterator(),
        quarantined.select(
            "event_id",
            "event_type",
            "topic",
            "partition",
            "offset",
            "raw",
            "quarantine_rule",
            "quarantine_reason",
        ).toLocalIterator(),
    )
    log.info("staging batch written", batch_id=batch_id, valid=offered[0], quarantined=offered[1])


def start_staging_stream(
    spark: SparkSession,
    settings: SparkJobsSettings,
    rules: TransformRules,
    *,
    available_now: bool = False,
    max_offsets_per_trigger: int = 20_000,
) -> StreamingQuery:
    k = settings.kafka
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", k.bootstrap_servers)
        .option("subscribe", ",".join(k.topic(t) for t in topics.USER_EVENT_TOPICS))
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        .load()
    )
    writer = (
        parse_events(source)
        .writeStream.queryName(QUERY)
        .option("checkpointLocation", str(settings.checkpoint_dir / "staging"))
        .foreachBatch(lambda df, batch_id: process_batch(df, batch_id, settings, rules))
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    return writer.start()
