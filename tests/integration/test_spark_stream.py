"""Kafka -> Spark Structured Streaming -> PostgreSQL star schema, with the real Kafka, Spark
(local mode) and PostgreSQL: facts with the right values, replays write nothing twice, a
SIGKILLed job resumes from its checkpoint, movies become SCD-1 dimensions, and the daily
aggregates agree with the facts."""

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

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")


TOPIC_OF = {
    "watch": topics.USER_WATCH_LOG,
    "rate": topics.USER_RATING_LOG,
    "comment": topics.USER_COMMENT_LOG,
    "click": topics.USER_CLICK_LOG,
}


def _produce(kafka_settings: KafkaSettings, events: list[dict[str, Any]]) -> None:
    producer = make_producer(kafka_settings)
    for ev in events:
        producer.produce(
            kafka_settings.topic(TOPIC_OF.get(ev.get("event_type"), topics.USER_CLICK_LOG)),
            key=str(ev.get("user_id")).encode(),
            value=json.dumps(ev).encode(),
        )
    assert producer.flush(10) == 0


def _counts(pg: PostgresSettings) -> dict[str, Any]:
    with connect(pg) as conn:

        def one(q: str) -> Any:
            return conn.execute(q).fetchone()[0]  # type: ignore[index]

        return {
            "stg": one("SELECT count(*) FROM stg_user_logs"),
            "comments": one("SELECT count(*) FROM stg_comments"),
            "facts": {t: one(f"SELECT count(*) FROM {t}") for t in FACTS},
            "users": one("SELECT count(*) FROM dim_user"),
            "quarantine": dict(
                conn.execute("SELECT rule, count(*) FROM quarantine GROUP BY rule").fetchall()
            ),
            "flags": {
                r[0]
                for t in FACTS
                for r in conn.execute(f"SELECT DISTINCT source_flag FROM {t}").fetchall()
            },
        }


FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


def test_events_become_facts_once_and_violations_are_quarantined_even_on_replay(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    from cinepulse_common.emotion import EMOTIONS
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
    _produce(kafka_settings, [*valid, *checked, *duplicates, *bad])
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
    first = _counts(pg_settings)
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
    assert _counts(pg_settings) == first

    shutil.rmtree(tmp_path / "checkpoints")
    run_once()  # no checkpoint: every record again from the earliest offset
    assert _counts(pg_settings) == first
    spark_with_jars.streams.removeListener(listener)


def _stg_ids(pg: PostgresSettings) -> list[str]:
    """The event ids of every fact (all four tables)."""
    union = " UNION ALL ".join(f"SELECT event_id FROM {t}" for t in FACTS)
    with connect(pg) as conn:
        return [str(r[0]) for r in conn.execute(union)]


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
    # warm-up first (JVM, Python workers, the classifier): then the kill lands mid-feed even
    # on a loaded machine, where the job's start can outlast a feed started with it
    warm = [event("rate", user_id="warm-up") for _ in range(20)]
    _produce(kafka_settings, warm)
    sent.extend(ev["event_id"] for ev in warm)
    deadline = time.monotonic() + 240
    while len(_stg_ids(pg_settings)) < len(warm):
        assert time.monotonic() < deadline, (tmp_path / "spark-1.log").read_text()[-3000:]
        assert first.poll() is None, (tmp_path / "spark-1.log").read_text()[-3000:]
        time.sleep(0.5)
    feeder = threading.Thread(target=produce, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 150
        while len(_stg_ids(pg_settings)) < len(warm) + 300:
            assert time.monotonic() < deadline, (tmp_path / "spark-1.log").read_text()[-3000:]
            assert first.poll() is None, (tmp_path / "spark-1.log").read_text()[-3000:]
            time.sleep(0.5)
        exported = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'cinepulse_spark_rows_total{query="events",table="fact_watch"}' in exported
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
    with connect(pg_settings) as conn:
        staged = conn.execute("SELECT count(*) FROM stg_user_logs").fetchone()[0]  # type: ignore[index]
    assert staged == len(sent)


def _movie(movie_id: int, title: str, fetched_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": movie_id,
        "title": title,
        "original_title": title,
        "original_language": "en",
        "overview": None,
        "tagline": None,
        "status": "Released",
        "release_date": "1999-03-30",
        "runtime": 136,
        "budget": 63000000,
        "revenue": 463517383,
        "popularity": 81.2,
        "vote_average": 8.217,
        "vote_count": 25000,
        "adult": False,
        "imdb_id": "tt0133093",
        "genres": [{"id": 28, "name": "Action"}, {"id": 878, "name": "Sci-Fi"}],
        "keywords": [{"id": 4565, "name": "dystopia"}],
        "production_companies": [{"id": 79, "name": "Village Roadshow", "origin_country": "US"}],
        "cast": [],
        "fetched_at": fetched_at,
    } | extra


def test_movies_become_scd1_dimensions_with_their_bridges(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import start_stream

    settings = SparkJobsSettings(
        kafka=kafka_settings, postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints"
    )

    def send(*records: Any) -> None:
        producer = make_producer(kafka_settings)
        for r in records:
            value = r if isinstance(r, bytes) else json.dumps(r).encode()
            producer.produce(kafka_settings.topic(topics.MOVIE), key=b"m", value=value)
        assert producer.flush(10) == 0

    def run_once() -> None:
        query = start_stream(
            spark_with_jars, settings, active_rules(), "movies", available_now=True
        )
        query.awaitTermination(300)
        assert query.exception() is None

    def state() -> dict[str, Any]:
        with connect(pg_settings) as conn:
            return {
                "movies": conn.execute(
                    "SELECT movie_id, title, vote_average::text, runtime_minutes, updated_at"
                    " FROM dim_movie ORDER BY movie_id"
                ).fetchall(),
                "genres": conn.execute(
                    "SELECT b.movie_id, g.name FROM bridge_movie_genre b"
                    " JOIN dim_genre g USING (genre_id) ORDER BY 1, 2"
                ).fetchall(),
                "keywords": conn.execute(
                    "SELECT movie_id, keyword_id FROM bridge_movie_keyword ORDER BY 1, 2"
                ).fetchall(),
                "companies": conn.execute(
                    "SELECT c.company_id, c.origin_country FROM dim_company c ORDER BY 1"
                ).fetchall(),
                "quarantine": conn.execute(
                    "SELECT rule FROM quarantine WHERE source_topic LIKE %s ORDER BY 1",
                    ("%movie",),
                ).fetchall(),
            }

    # an older and a newer fetch of one movie in the same batch: the newer one wins
    send(
        _movie(603, "The Matrix", "2026-11-20T00:00:00+00:00"),
        _movie(603, "The Matrix (1999)", "2026-11-21T00:00:00+00:00", runtime=137),
        _movie(604, "The Matrix Reloaded", "2026-11-21T00:00:00+00:00", genres=[], keywords=[]),
        _movie(605, "Broken", "2026-11-21T00:00:00+00:00", vote_average=11.5),
        b"[1, 2]",
    )
    run_once()
    first = state()
    assert [(m[0], m[1], m[2], m[3]) for m in first["movies"]] == [
        (603, "The Matrix (1999)", "8.2", 137),
        (604, "The Matrix Reloaded", "8.2", 136),
    ]
    # the rules' genre alias: "Sci-Fi" is TMDB's "Science Fiction"
    assert first["genres"] == [(603, "Action"), (603, "Science Fiction")]
    assert first["keywords"] == [(603, 4565)]
    assert first["companies"] == [(79, "US")]
    assert first["quarantine"] == [("not",), ("vote_average",)]

    run_once()  # nothing new
    shutil.rmtree(tmp_path / "checkpoints")
    run_once()  # every record again: an unchanged movie keeps its row and updated_at
    assert state() == first

    # a changed movie overwrites its row (SCD type 1) and its bridges follow its lists
    send(
        _movie(
            603,
            "The Matrix",
            "2026-11-25T00:00:00+00:00",
            genres=[{"id": 28, "name": "Action"}],
            keywords=[{"id": 1, "name": "hacker"}],
        )
    )
    run_once()
    after = state()
    assert after["movies"][0][1] == "The Matrix" and after["movies"][0][4] > first["movies"][0][4]
    assert after["movies"][1] == first["movies"][1]
    assert after["genres"] == [(603, "Action")]
    assert after["keywords"] == [(603, 1)]


def test_daily_aggregates_match_the_facts_and_follow_late_events(
    spark_with_jars: Any,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    tmp_path: Path,
) -> None:
    from datetime import date

    from cinepulse_spark_jobs.aggregates import run_aggregates
    from cinepulse_spark_jobs.settings import SparkJobsSettings
    from cinepulse_spark_jobs.stream import start_stream

    days = ["2026-11-20", "2026-11-21", "2026-11-22"]
    events = []
    for i in range(240):
        kind = ["watch", "rate", "comment", "click"][i % 4]
        payload = {
            "watch": {"position_seconds": 100 + i, "duration_seconds": 110 + i + i % 3 * 1000},
            "rate": {"rating": 0.5 + (i % 10) * 0.5},
            "comment": {"text": ["I loved it", "This was awful and boring", "ok"][i % 3]},
            "click": {"target": "poster"},
        }[kind]
        events.append(
            event(
                kind,
                user_id=f"u{i % 9}",
                movie_id=600 + i % 5,
                occurred_at=f"{days[i % 3]}T{i % 24:02d}:00:00+00:00",
                payload=payload,
            )
        )
    _produce(kafka_settings, events)
    settings = SparkJobsSettings(
        kafka=kafka_settings, postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints"
    )
    query = start_stream(spark_with_jars, settings, active_rules(), "events", available_now=True)
    query.awaitTermination(300)
    assert query.exception() is None

    first = run_aggregates(spark_with_jars, settings)
    assert first.dates == 3 and first.rows["agg_movie_daily"] == 15

    expected_movie_sql = """
        WITH e AS (
            SELECT date_key, movie_id, user_id, 'watch' AS t,
                   least(position_seconds, duration_seconds) AS ws, completed, NULL::numeric AS r
            FROM fact_watch
            UNION ALL SELECT date_key, movie_id, user_id, 'rate', NULL, NULL, rating FROM fact_rating
            UNION ALL SELECT date_key, movie_id, user_id, 'comment', NULL, NULL, NULL
            FROM fact_comment
            UNION ALL SELECT date_key, movie_id, user_id, 'click', NULL, NULL, NULL FROM fact_click)
        SELECT date_key, movie_id, count(*), count(DISTINCT user_id),
               count(*) FILTER (WHERE t = 'watch'), count(*) FILTER (WHERE completed),
               coalesce(sum(ws), 0)::numeric(16, 2), count(*) FILTER (WHERE t = 'rate'),
               coalesce(sum(r), 0)::numeric(14, 1), count(*) FILTER (WHERE t = 'comment'),
               count(*) FILTER (WHERE t = 'click')
        FROM e GROUP BY 1, 2 ORDER BY 1, 2
    """
    actual_movie_sql = """
        SELECT date_key, movie_id, events, users, watches, completed_watches, watch_seconds,
               ratings, rating_sum, comments, clicks
        FROM agg_movie_daily ORDER BY 1, 2
    """
    with connect(pg_settings) as conn:
        assert (
            conn.execute(actual_movie_sql).fetchall() == conn.execute(expected_movie_sql).fetchall()
        )
        histogram = conn.execute(
            "SELECT rating_histogram FROM agg_movie_daily WHERE ratings > 0 LIMIT 1"
        ).fetchone()[0]  # type: ignore[index]
        assert histogram and all(float(k) * 2 == int(float(k) * 2) for k in histogram)
        assert (
            conn.execute("SELECT sum(comments) FROM agg_emotion_daily").fetchone()[0]
            == conn.execute("SELECT count(*) FROM fact_comment").fetchone()[0]
        )  # type: ignore[index]
        assert conn.execute("SELECT sum(events) FROM agg_daily_activity").fetchone()[0] == 240  # type: ignore[index]

    # the default margin (for writers' transactions open across the last start) looks at
    # these days again; without it, nothing changed, so the next run recomputes no day
    assert run_aggregates(spark_with_jars, settings).dates == 3
    settings = settings.model_copy(update={"aggregate_margin_s": 0})
    assert run_aggregates(spark_with_jars, settings).dates == 0

    # a late event for the first day: only that day is recomputed, and it counts there
    late = event("rate", movie_id=600, user_id="late", occurred_at="2026-11-20T23:00:00+00:00")
    late["payload"] = {"rating": 5.0}
    _produce(kafka_settings, [late])
    query = start_stream(spark_with_jars, settings, active_rules(), "events", available_now=True)
    query.awaitTermination(300)
    again = run_aggregates(spark_with_jars, settings)
    assert again.dates == 1 and again.date_from == date(2026, 11, 20)
    with connect(pg_settings) as conn:
        assert (
            conn.execute(actual_movie_sql).fetchall() == conn.execute(expected_movie_sql).fetchall()
        )
        runs = conn.execute("SELECT status FROM agg_runs ORDER BY run_id").fetchall()
    assert runs == [("succeeded",)] * 4
