"""Spark and the pandas fallback are one path: the same fixed input gives identical facts
(except ``source_flag``, ``run_id`` and ``ingested_at``) and an identical quarantine.

The input (:mod:`tests.integration.parity_corpus`, a few thousand records with duplicates,
late events, aliases, NFC comments and every kind of rule violation) goes to Kafka, and the
same records, at the positions Kafka gave them, go to MongoDB as the archiver writes them
(:func:`cinepulse_archiver.documents.to_document`). Spark's events query reads Kafka into the
main tables; a fallback run reads MongoDB into the fallback schema of the same database.

Records that are not JSON objects never reach MongoDB: the archiver dead-letters them (and
the fallback does not read the dead-letter topic). Spark quarantines them as ``not a JSON
object``; the test checks that they are exactly the difference between the two quarantines.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cinepulse_archiver.documents import Source, Unusable, to_document
from cinepulse_common.kafka import make_producer
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_common.validation import EVENT_CHECKS, event_reasons, rule_code
from cinepulse_common.warehouse import FACT_BASE, FACT_EXTRA, FACT_TABLE
from tests.integration.parity_corpus import corpus, topic_of

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")

Position = tuple[str, int, int]


def _documents(
    records: list[tuple[str, bytes]], positions: list[Position], received_at: datetime
) -> tuple[list[dict[str, Any]], set[Position]]:
    """The archiver's documents of ``records`` (and the positions it dead-letters)."""
    docs, dead = [], set()
    for (key, value), (topic, partition, offset) in zip(records, positions, strict=True):
        source = Source(topic, partition, offset, key.encode(), 1_780_000_000_000)
        try:
            docs.append(to_document(source, value, received_at, movie_topic=False)[1])
        except Unusable:
            dead.add((topic, partition, offset))
    return docs, dead


def _expected_rules() -> set[str]:
    """Every check's rule code (what the quarantine must show at least once)."""
    reasons = event_reasons(active_rules())
    return {rule_code(reasons[name]) for name in EVENT_CHECKS}


def test_spark_and_pandas_transforms_agree_record_for_record(spark: Any) -> None:
    """The transforms alone (no Kafka, no PostgreSQL): every modelled value and every
    quarantine verdict, one record at a time, so a difference names its record."""
    import pandas as pd

    from cinepulse_pandas_fallback.job import quarantine_rows, transform_events
    from cinepulse_pandas_fallback.transforms import model_events as pd_model
    from cinepulse_spark_jobs.stream import _quarantine_rows
    from cinepulse_spark_jobs.stream import transform_events as spark_transform
    from cinepulse_spark_jobs.transforms import model_events, parse_events

    rules = active_rules()
    records = corpus()
    counters: Counter[tuple[str, int]] = Counter()
    positions: list[Position] = []
    for key, value in records:
        topic, partition = topic_of(value), hash(key) % 3
        positions.append((topic, partition, counters[(topic, partition)]))
        counters[(topic, partition)] += 1
    frame = spark.createDataFrame(
        [(t, p, o, v) for (t, p, o), (_, v) in zip(positions, records, strict=True)],
        "topic string, partition int, offset long, value binary",
    )
    modelled, quarantined = spark_transform(parse_events(frame), rules)

    # keyed by id *and* position: copies of an id with other content are all modelled (the
    # load's event-id registry picks one and quarantines the others)
    def at(r: Any) -> tuple[Any, ...]:
        return (r["event_id"], r["source_topic"], r["source_partition"], r["source_offset"])

    spark_facts = {at(r): r.asDict() for r in model_events(modelled, "is_late").collect()}
    spark_held = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r.asDict()
        for r in _quarantine_rows(quarantined).collect()
    }

    docs, dead = _documents(records, positions, datetime.now(UTC))
    pd_modelled, pd_quarantined = transform_events(pd.DataFrame(docs), rules)
    pandas_facts = {at(r): r for r in pd_model(pd_modelled, "is_late").to_dict("records")}
    pandas_held = {
        (r["source_topic"], r["source_partition"], r["source_offset"]): r
        for r in quarantine_rows(pd_quarantined).to_dict("records")
    }

    def same(column: str, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        if column in ("occurred_at", "received_at"):
            spark_ts = datetime.fromisoformat(a) if isinstance(a, str) else a.astimezone(UTC)
            return bool(spark_ts == b)
        if column == "sentiment":
            import numpy as np

            return bool(np.float32(a) == np.float32(b))
        if column in ("payload", "emotion_scores"):
            return json.loads(a) == json.loads(b)
        return bool(a == b) and type(a) is type(b)

    differences = [
        (event_id, column, spark_facts[event_id][column], pandas_facts[event_id][column])
        for event_id in spark_facts.keys() & pandas_facts.keys()
        for column in spark_facts[event_id]
        if not same(column, spark_facts[event_id][column], pandas_facts[event_id][column])
    ]
    assert not differences, differences[:20]
    assert spark_facts.keys() == pandas_facts.keys(), (
        sorted(spark_facts.keys() - pandas_facts.keys())[:10],
        sorted(pandas_facts.keys() - spark_facts.keys())[:10],
    )
    verdicts = ("event_id", "event_type", "rule", "reason")
    held_differences = [
        (
            position,
            {c: spark_held[position][c] for c in verdicts},
            {c: pandas_held[position][c] for c in verdicts},
        )
        for position in spark_held.keys() & pandas_held.keys()
        if any(spark_held[position][c] != pandas_held[position][c] for c in verdicts)
    ]
    assert not held_differences, held_differences[:20]
    assert pandas_held.keys() == spark_held.keys() - dead
    assert {spark_held[p]["rule"] for p in dead} == {"not"}
    assert _expected_rules() <= {r["rule"] for r in spark_held.values()}
    late = sum(1 for f in pandas_facts.values() if f["is_late"])
    assert late > 50 and late == sum(1 for f in spark_facts.values() if f["is_late"])


FACT_COLUMNS = {
    table: [c for c in (*FACT_BASE, *FACT_EXTRA[kind]) if c != "emotion_scores"]
    + ["emotion_scores::text" if kind == "comment" else "NULL"]
    for kind, table in FACT_TABLE.items()
}


def test_spark_and_the_fallback_write_identical_facts_and_quarantine(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    mongo_settings: MongoSettings,
    tmp_path: Path,
) -> None:
    from cinepulse_pandas_fallback.job import run_window
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import start_stream

    rules = active_rules()
    records = corpus()
    # produce synchronously enough to know each record's position (its delivery report)
    positions: list[Position | None] = [None] * len(records)
    producer = make_producer(kafka_settings)

    def delivered(i: int) -> Any:
        def report(err: Any, msg: Any) -> None:
            assert err is None, err
            positions[i] = (msg.topic(), msg.partition(), msg.offset())

        return report

    for i, (key, value) in enumerate(records):
        producer.produce(
            kafka_settings.topic(topic_of(value)),
            key=key.encode(),
            value=value,
            on_delivery=delivered(i),
        )
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert all(p is not None for p in positions)

    arrived = datetime.now(UTC)
    docs, dead = _documents(records, positions, arrived)  # type: ignore[arg-type]
    with make_client(mongo_settings) as client:
        client[mongo_settings.database]["user_logs"].insert_many(docs)

    spark_settings = SparkJobsSettings(
        kafka=kafka_settings, postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints"
    )
    query = start_stream(spark_with_jars, spark_settings, rules, "events", available_now=True)
    query.awaitTermination(600)
    assert query.exception() is None
    assert len(query.recentProgress) >= 1

    settings = PandasFallbackSettings(postgres=pg_settings, mongo=mongo_settings)
    summary = run_window(
        settings,
        rules,
        arrived - timedelta(minutes=5),
        arrived + timedelta(minutes=5),
        progress=None,
    )
    assert summary.status == "succeeded" and summary.events_read == len(docs)

    with connect(pg_settings) as conn:

        def rows(query: str, *args: Any) -> list[tuple[Any, ...]]:
            return sorted(conn.execute(query, args).fetchall(), key=repr)

        for table, columns in FACT_COLUMNS.items():
            cols = ", ".join(columns)
            spark_rows = rows(f"SELECT {cols} FROM public.{table}")
            pandas_rows = rows(
                f"SELECT {cols} FROM fallback.{table} WHERE run_id = %s", summary.run_id
            )
            assert spark_rows, table
            assert len(spark_rows) == len(pandas_rows), table
            assert spark_rows == pandas_rows, (
                table,
                [r for r in spark_rows if r not in pandas_rows][:3],
                [r for r in pandas_rows if r not in spark_rows][:3],
            )
            flags = conn.execute(
                f"SELECT DISTINCT source_flag FROM fallback.{table} WHERE run_id = %s",
                (summary.run_id,),
            ).fetchall()
            assert flags == [("pandas",)]

        held = "source_topic, source_partition, source_offset, event_id, event_type, rule, reason"
        spark_held = rows(f"SELECT {held} FROM public.quarantine")
        pandas_held = rows(
            f"SELECT {held} FROM fallback.quarantine WHERE run_id = %s", summary.run_id
        )
    dead_held = [r for r in spark_held if (r[0], r[1], r[2]) in dead]
    assert len(dead_held) == len(dead) >= 5 and {r[5] for r in dead_held} == {"not"}
    assert [r for r in spark_held if (r[0], r[1], r[2]) not in dead] == pandas_held
    assert _expected_rules() - {"not"} <= {r[5] for r in pandas_held}
    assert len(records) > 2500 and sum(summary.written.values()) > 2000
