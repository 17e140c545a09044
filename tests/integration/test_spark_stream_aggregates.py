"""Kafka -> Spark Structured Streaming -> PostgreSQL, then the daily aggregates job, with the
real Kafka, Spark (local mode) and PostgreSQL: the aggregates agree with the facts, and a
late event recomputes only its own day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings
from tests.factories import event
from tests.integration.spark_stream_io import produce

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")


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
    produce(kafka_settings, events)
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
    produce(kafka_settings, [late])
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
