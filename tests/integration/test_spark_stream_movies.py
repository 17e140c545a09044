"""Kafka -> Spark Structured Streaming -> PostgreSQL star schema, the movies query, with the
real Kafka, Spark (local mode) and PostgreSQL: movies become SCD-1 dimensions with their
genre, keyword and company bridges, a replay changes nothing, and an older fetch loaded after
a newer one changes nothing either."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import KafkaSettings, PostgresSettings

pytestmark = pytest.mark.integration

pytest.importorskip("pyspark")


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
                    "SELECT movie_id, title, vote_average::text, runtime_minutes, updated_at,"
                    " fetched_at FROM dim_movie ORDER BY movie_id"
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
    assert after["movies"][0][5] == datetime(2026, 11, 25, tzinfo=UTC)

    # a late (or replayed) record of an older fetch, loaded after the newer one: the newer
    # version keeps its row and its lists
    send(
        _movie(
            603,
            "The Matrix (late)",
            "2026-11-22T00:00:00+00:00",
            genres=[{"id": 18, "name": "Drama"}],
            keywords=[],
        )
    )
    run_once()
    assert state() == after
