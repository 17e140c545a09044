"""Records gone from Kafka before the events query read them (what retention does to a job
that was down too long): the real query stops with Spark's data-loss error instead of
skipping them, and the stop reaches the chart's ``CinepulseStreamingDataLoss`` alert through
the real Pushgateway and Prometheus (issue 21)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition

from cinepulse_common.kafka import make_admin, make_consumer
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings
from cinepulse_devstack import Stack, chart
from cinepulse_devstack.demo import count_landed
from cinepulse_devstack.promql import Prometheus
from tests.factories import event
from tests.integration.spark_stream_io import TOPIC_OF, produce

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")

PARTITIONS = 3  # the kafka_settings fixture's topics


def _delete_everything(kafka: KafkaSettings) -> int:
    """Delete every record of the four event topics, as retention would; returns how many."""
    consumer = make_consumer(kafka, "data-loss-watermarks")
    admin = make_admin(kafka)
    marks: list[TopicPartition] = []
    deleted = 0
    try:
        for topic in {kafka.topic(t) for t in TOPIC_OF.values()}:
            for p in range(PARTITIONS):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                deleted += high - low
                marks.append(TopicPartition(topic, p, high))
    finally:
        consumer.close()
    for tp, future in admin.delete_records(marks).items():
        assert future.result(30).low_watermark == tp.offset, tp
    return deleted


def _alert_expression() -> str:
    r = chart.render([chart.chart_dir() / "ci" / "default-values.yaml"])
    assert r.returncode == 0, r.stderr
    for group in chart.prometheus_rule_groups(chart.documents(r.stdout)):
        for rule in group["rules"]:
            if rule.get("alert") == "CinepulseStreamingDataLoss":
                return str(rule["expr"])
    raise AssertionError("the chart has no CinepulseStreamingDataLoss alert")


def test_records_gone_from_kafka_stop_the_query_and_raise_its_alert(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    stack: Stack,
    tmp_path: Path,
) -> None:
    from cinepulse_spark_jobs.failures import DATA_LOSS_JOB, on_query_failed
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import is_data_loss, start_stream

    settings = SparkJobsSettings(
        kafka=kafka_settings,
        postgres=pg_settings,
        checkpoint_dir=tmp_path / "checkpoints",
        pushgateway_url=stack.pushgateway.url,
    )
    kinds = ["watch", "rate", "comment", "click"]
    read = [event(kinds[i % 4], user_id=f"user-{i}") for i in range(24)]
    gone = [event(kinds[i % 4], user_id=f"user-{i}") for i in range(24)]
    dsn = pg_settings.dsn.get_secret_value()

    def run() -> BaseException | None:
        query = start_stream(
            spark_with_jars, settings, active_rules(), "events", available_now=True
        )
        # a failed query raises here; its exception is read from the query below
        with contextlib.suppress(Exception):
            query.awaitTermination(300)
        assert not query.isActive, "the query did not stop within 300 s"
        return query.exception()

    produce(kafka_settings, read)
    assert run() is None
    assert count_landed(dsn, [e["event_id"] for e in read]) == len(read)

    # the job is down while newer records arrive and retention removes them all
    produce(kafka_settings, gone)
    assert _delete_everything(kafka_settings) == len(read) + len(gone)
    error = run()
    assert error is not None, "the query skipped records that were gone from Kafka"
    assert is_data_loss(error), str(error)[:500]
    assert count_landed(dsn, [e["event_id"] for e in gone]) == 0

    # the driver's reaction: the recovery logged, the stop pushed, the chart's alert raised
    group = f"{stack.pushgateway.url}/metrics/job/{DATA_LOSS_JOB}/query/events"
    prometheus = Prometheus(stack.prometheus.url)
    try:
        on_query_failed("events", error, settings.pushgateway_url)
        expr = _alert_expression()
        deadline = time.monotonic() + 60
        while not (series := prometheus.query(expr)) and time.monotonic() < deadline:
            time.sleep(1)
        assert [s["metric"].get("query") for s in series] == ["events"], (expr, series)
    finally:
        prometheus.close()
        httpx.delete(group, timeout=5).raise_for_status()
