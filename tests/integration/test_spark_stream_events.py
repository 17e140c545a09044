"""Kafka -> Spark Structured Streaming -> PostgreSQL star schema, the events query, with the
real Kafka, Spark (local mode) and PostgreSQL: facts with the right values, violations
quarantined, replays write nothing twice, and a SIGKILLed job resumes from its checkpoint."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
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
from tests.integration.spark_stream_io import TOPIC_OF, counts, fact_event_ids, produce

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")


def test_events_become_facts_once_and_violations_are_quarantined_even_on_replay(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    from cinepulse_emotion import EMOTIONS
    from cinepulse_spark_jobs.metrics import MetricsListener
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import start_stream

    valid = [
        event(t, user_id=f"user-{i % 7}")
        for i, t in enumerate(["watch", "rate", "comment", "click"] * 25)
    ]
    # values whose modelling is checked one by one below
    watch = event("watch", payload={"position_seconds": 4861.239, "duration_seconds": 5400})
    rewatch = event("watch", payload={"position_seconds": 5402, "duration_seconds": 5400})
    rating = event("rate", payload={"rating": 3.5}, user_id="critic")
    comment = event("comment", payload={"text": "  What a  wonderful,\n joyful film!  "})
    click = event("click", payload={"target": "thumbnail"})  # an alias of "poster"
    legacy = event("view", payload={"position_seconds": 60, "duration_seconds": 600})
    # the critic's first rating, older than the others but within the rules' bounded past
    # (time.max_event_age_days); an event older than that bound is quarantined (``bad``)
    earlier = (datetime.now(UTC) - timedelta(days=300)).replace(microsecond=0)
    old = event("rate", occurred_at=earlier.isoformat(), user_id="critic")
    late = event(
        "click",
        occurred_at="2026-01-01T10:00:00+00:00",
        received_at="2026-01-01T12:00:00+00:00",
    )
    checked = [watch, rewatch, rating, comment, click, legacy, old, late]
    duplicates = valid[:10]  # resent by a client: same event_id, new records
    bad = [
        event("rate", payload={"rating": 4.3}),
        event("click", payload={"target": "buy-now"}),
        event("watch", payload={"position_seconds": -5, "duration_seconds": 60}),
        event("comment", payload={"text": "   "}),
        event("rate", user_id="bad user id"),
        event("rate", movie_id=0),
        event("rate", occurred_at="2999-01-01T00:00:00Z"),
        event("rate", occurred_at="1961-04-12T06:07:00+00:00"),  # beyond the bounded past
        event("dance"),
        event("comment", payload={"text": "nice\x00 film"}),  # PostgreSQL cannot store NUL
        event("click", session_id="s\x00"),
    ]
    legacy["event_type"] = "view"
    produce(kafka_settings, [*valid, *checked, *duplicates, *bad])
    producer = make_producer(kafka_settings)
    producer.produce(kafka_settings.topic(topics.USER_CLICK_LOG), key=b"x", value=b"{not json")
    producer.produce(kafka_settings.topic(topics.USER_CLICK_LOG), key=b"x", value=b"\x00{}")
    assert producer.flush(10) == 0

    settings = SparkJobsSettings(
        kafka=kafka_settings, postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints"
    )
    rules = active_rules()
    listener = MetricsListener()
    spark_with_jars.streams.addListener(listener)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"query": "events", **labels}) or 0.0

    rows_before = sample("cinepulse_spark_rows_total", table="fact_rating")
    rating_before = sample("cinepulse_spark_quarantined_total", rule="rating")
    late_before = sample("cinepulse_spark_late_events_total")

    def run_once() -> None:
        query = start_stream(spark_with_jars, settings, rules, "events", available_now=True)
        query.awaitTermination(300)
        assert query.exception() is None

    run_once()
    first = counts(pg_settings)
    assert first["stg"] == 108 and first["comments"] == 26
    assert first["facts"] == {
        "fact_watch": 28,
        "fact_rating": 27,
        "fact_comment": 26,
        "fact_click": 27,
    }
    assert first["flags"] == {"spark"}
    # and the two unparseable records (one with a NUL byte, stored escaped)
    assert sum(first["quarantine"].values()) == len(bad) + 2
    assert {
        "rating",
        "unknown",
        "payload.position_seconds",
        "text",
        "user_id",
        "movie_id",
        "payload.text",
        "session_id",
    } <= set(first["quarantine"])
    assert sample("cinepulse_spark_rows_total", table="fact_rating") - rows_before == 27
    assert sample("cinepulse_spark_quarantined_total", rule="rating") - rating_before == 1
    assert sample("cinepulse_spark_late_events_total") - late_before == 1
    assert sample("cinepulse_spark_last_progress_timestamp_seconds") > 0

    with connect(pg_settings) as conn:

        def row(q: str, *args: Any) -> Any:
            return conn.execute(q, args).fetchone()

        assert row(
            "SELECT position_seconds::text, duration_seconds::text, completion_ratio::text,"
            " completed, date_key FROM fact_watch WHERE event_id = %s",
            watch["event_id"],
        ) == ("4861.24", "5400.00", "0.9002", True, int(watch["occurred_at"][:10].replace("-", "")))
        # a position a little beyond the duration (within the tolerance) caps at 1
        assert row(
            "SELECT completion_ratio::text FROM fact_watch WHERE event_id = %s",
            rewatch["event_id"],
        ) == ("1.0000",)
        assert row(
            "SELECT event_type FROM stg_user_logs WHERE event_id = %s", legacy["event_id"]
        ) == ("watch",)
        assert row(
            "SELECT rating::text FROM fact_rating WHERE event_id = %s", rating["event_id"]
        ) == ("3.5",)
        assert row("SELECT target FROM fact_click WHERE event_id = %s", click["event_id"]) == (
            "poster",
        )
        text, emotion, sentiment, scores, version = row(
            "SELECT comment_text, emotion, sentiment, emotion_scores, classifier_version"
            " FROM fact_comment WHERE event_id = %s",
            comment["event_id"],
        )
        assert text == "What a wonderful, joyful film!"
        assert emotion == "joy" and sentiment > 0 and version
        assert set(scores) == set(EMOTIONS)
        assert row(
            "SELECT count(*) FROM fact_comment WHERE emotion IS NULL OR sentiment IS NULL"
        ) == (0,)
        # the user's span, from the earliest event seen
        first_seen, last_seen = row(
            "SELECT first_seen_at, last_seen_at FROM dim_user WHERE user_id = 'critic'"
        )
        assert first_seen == earlier and last_seen > earlier

    run_once()  # same checkpoint: nothing new to read
    assert counts(pg_settings) == first

    shutil.rmtree(tmp_path / "checkpoints")
    run_once()  # no checkpoint: every record again from the earliest offset
    assert counts(pg_settings) == first
    spark_with_jars.streams.removeListener(listener)


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
            [sys.executable, "-m", "cinepulse_spark_jobs", "stream", "--query", "events"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    sent: list[str] = []
    done = threading.Event()

    def feed() -> None:
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
    # warm-up first (JVM, Python workers, the classifier): then the kill lands mid-feed even
    # on a loaded machine, where the job's start can outlast a feed started with it
    warm = [event("rate", user_id="warm-up") for _ in range(20)]
    produce(kafka_settings, warm)
    sent.extend(ev["event_id"] for ev in warm)
    deadline = time.monotonic() + 240
    while len(fact_event_ids(pg_settings)) < len(warm):
        assert time.monotonic() < deadline, (tmp_path / "spark-1.log").read_text()[-3000:]
        assert first.poll() is None, (tmp_path / "spark-1.log").read_text()[-3000:]
        time.sleep(0.5)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 150
        while len(fact_event_ids(pg_settings)) < len(warm) + 300:
            assert time.monotonic() < deadline, (tmp_path / "spark-1.log").read_text()[-3000:]
            assert first.poll() is None, (tmp_path / "spark-1.log").read_text()[-3000:]
            time.sleep(0.5)
        exported = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'cinepulse_spark_rows_total{query="events",table="fact_watch"}' in exported
        assert "cinepulse_spark_last_progress_timestamp_seconds" in exported
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM, mid-stream
        first.wait(30)
        staged_at_kill = len(fact_event_ids(pg_settings))
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    feeder.join(120)
    assert done.is_set()
    assert staged_at_kill < len(sent), "the job had finished before it was killed"

    second = start(2)
    try:
        deadline = time.monotonic() + 180
        while len(fact_event_ids(pg_settings)) < len(sent):
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
    ids = fact_event_ids(pg_settings)
    assert sorted(ids) == sorted(sent)  # nothing lost, nothing twice
    with connect(pg_settings) as conn:
        staged = conn.execute("SELECT count(*) FROM stg_user_logs").fetchone()[0]  # type: ignore[index]
    assert staged == len(sent)
