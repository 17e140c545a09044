"""Kafka -> Spark Structured Streaming -> PostgreSQL staging, with the real Kafka, Spark
(local mode) and PostgreSQL: replays write nothing twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings
from tests.factories import event

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")


TOPIC_OF = {
    "watch": topics.USER_WATCH_LOG,
    "rate": topics.USER_RATING_LOG,
    "comment": topics.USER_COMMENT_LOG,
    "click": topics.USER_CLICK_LOG,
}


def _counts(pg: PostgresSettings) -> dict[str, Any]:
    with connect(pg) as conn:
        return {
            "stg": conn.execute("SELECT count(*) FROM stg_user_logs").fetchone()[0],  # type: ignore[index]
            "comments": conn.execute("SELECT count(*) FROM stg_comments").fetchone()[0],  # type: ignore[index]
            "quarantine": dict(
                conn.execute("SELECT rule, count(*) FROM quarantine GROUP BY rule").fetchall()
            ),
            "flags": {r[0] for r in conn.execute("SELECT DISTINCT source_flag FROM stg_user_logs")},
        }


def test_events_are_staged_once_and_violations_quarantined_even_on_replay(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.staging import start_staging_stream

    producer = make_producer(kafka_settings)
    valid = [
        event(t, user_id=f"user-{i}")
        for i, t in enumerate(["watch", "rate", "comment", "click"] * 25)
    ]
    duplicates = valid[:10]  # resent by a client: same event_id, new records
    bad = [
        event("rate", payload={"rating": 4.3}),
        event("click", payload={"target": "buy-now"}),
        event("watch", payload={"position_seconds": -5, "duration_seconds": 60}),
    ]
    for ev in [*valid, *duplicates, *bad]:
        producer.produce(
            kafka_settings.topic(TOPIC_OF[ev["event_type"]]),
            key=ev["user_id"].encode(),
            value=json.dumps(ev).encode(),
        )
    producer.produce(kafka_settings.topic(topics.USER_CLICK_LOG), key=b"x", value=b"{not json")
    assert producer.flush(10) == 0

    from cinepulse_spark_jobs.metrics import MetricsListener

    settings = SparkJobsSettings(
        kafka=kafka_settings, postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints"
    )
    rules = active_rules()
    listener = MetricsListener()
    spark_with_jars.streams.addListener(listener)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"query": "staging", **labels}) or 0.0

    rows_before = sample("cinepulse_spark_rows_total", table="stg_user_logs")
    rating_before = sample("cinepulse_spark_quarantined_total", rule="rating")

    def run_once() -> None:
        query = start_staging_stream(spark_with_jars, settings, rules, available_now=True)
        query.awaitTermination(240)
        assert query.exception() is None

    run_once()
    first = _counts(pg_settings)
    assert first["stg"] == 100 and first["comments"] == 25
    assert first["flags"] == {"spark"}
    assert sum(first["quarantine"].values()) == 4  # 3 rule breaches and the unparseable one
    assert {"rating", "unknown", "payload.position_seconds", "not"} <= set(first["quarantine"])
    # metrics: rows offered (110: the resent duplicates are deduplicated within the batch
    # or hit ON CONFLICT), quarantine by rule, and the query's heartbeat from the listener
    assert sample("cinepulse_spark_rows_total", table="stg_user_logs") - rows_before >= 100
    assert sample("cinepulse_spark_quarantined_total", rule="rating") - rating_before == 1
    assert sample("cinepulse_spark_last_progress_timestamp_seconds") > 0

    run_once()  # same checkpoint: nothing new to read
    assert _counts(pg_settings) == first

    shutil.rmtree(tmp_path / "checkpoints")
    run_once()  # no checkpoint: every record again from the earliest offset
    assert _counts(pg_settings) == first
    spark_with_jars.streams.removeListener(listener)


def _stg_ids(pg: PostgresSettings) -> list[str]:
    with connect(pg) as conn:
        return [str(r[0]) for r in conn.execute("SELECT event_id FROM stg_user_logs")]


def test_the_streaming_job_killed_mid_stream_resumes_from_its_checkpoint(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    import httpx

    from tests.integration.services import free_port, service_env

    metrics_port = free_port()
    env = service_env(
        CINEPULSE_METRICS_PORT=str(metrics_port),
        CINEPULSE_KAFKA__BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        CINEPULSE_KAFKA__TOPIC_PREFIX=kafka_settings.topic_prefix,
        CINEPULSE_POSTGRES__DSN=pg_settings.dsn.get_secret_value(),
        CINEPULSE_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
    )

    def start(n: int) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"spark-{n}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "cinepulse_spark_jobs", "staging"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    sent: list[str] = []
    done = threading.Event()

    def produce() -> None:
        producer = make_producer(kafka_settings)
        for i in range(3000):
            ev = event(["watch", "rate", "comment", "click"][i % 4], user_id=f"user-{i % 50}")
            producer.produce(
                kafka_settings.topic(TOPIC_OF[ev["event_type"]]),
                key=ev["user_id"].encode(),
                value=json.dumps(ev).encode(),
            )
            sent.append(ev["event_id"])
            if i % 100 == 99:
                producer.flush(10)
                time.sleep(1.0)  # ~30 s of steady input: the kill lands mid-stream
        assert producer.flush(10) == 0
        done.set()

    first = start(1)
    feeder = threading.Thread(target=produce, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 150
        while len(_stg_ids(pg_settings)) < 300:
            assert time.monotonic() < deadline, (tmp_path / "spark-1.log").read_text()[-3000:]
            assert first.poll() is None, (tmp_path / "spark-1.log").read_text()[-3000:]
            time.sleep(0.5)
        exported = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'cinepulse_spark_rows_total{query="staging",table="stg_user_logs"}' in exported
        assert "cinepulse_spark_last_progress_timestamp_seconds" in exported
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM, mid-stream
        first.wait(30)
        staged_at_kill = len(_stg_ids(pg_settings))
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    feeder.join(120)
    assert done.is_set()
    assert staged_at_kill < len(sent), "the job had finished before it was killed"

    second = start(2)
    try:
        deadline = time.monotonic() + 180
        while len(_stg_ids(pg_settings)) < len(sent):
            assert time.monotonic() < deadline, (tmp_path / "spark-2.log").read_text()[-3000:]
            assert second.poll() is None, (tmp_path / "spark-2.log").read_text()[-3000:]
            time.sleep(1)
        time.sleep(2)  # anything beyond would be a duplicate or a stranger
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
    ids = _stg_ids(pg_settings)
    assert sorted(ids) == sorted(sent)  # nothing lost, nothing twice
