"""The ``movie`` topic through the fallback's transforms and Spark's, record for record: the
``dim_movie`` rows (every column, lists included) and every quarantine verdict agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cinepulse_archiver.documents import Source, Unusable, to_document
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import MongoSettings, PostgresSettings

pytestmark = pytest.mark.integration
pytest.importorskip("pyspark")

TOPIC = "t.movie"


def _movie(movie_id: Any, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": movie_id,
        "imdb_id": f"tt{movie_id}",
        "title": f"Movie {movie_id}",
        "original_title": f"Film {movie_id}",
        "original_language": "en",
        "overview": "Something happens.",
        "tagline": None,
        "status": "Released",
        "release_date": "1999-10-15",
        "runtime": 139,
        "budget": 63000000,
        "revenue": 100853753,
        "popularity": 61.416,
        "vote_average": 8.433,
        "vote_count": 26280,
        "adult": False,
        "genres": [{"id": 18, "name": "Drama"}, {"id": 53, "name": "Thriller"}],
        "keywords": [{"id": 825, "name": "support group"}],
        "production_companies": [{"id": 508, "name": "Regency", "origin_country": "US"}],
        "fetched_at": "2026-11-20T10:00:00Z",
    }
    return base | kw


def corpus() -> list[Any]:
    """Valid movies, every check broken once, odd types, versions of one movie."""
    records: list[Any] = [_movie(i) for i in range(1, 21)]
    records += [
        # versions of movie 1: the newest fetch wins, whatever the offset order
        _movie(1, title="Old title", fetched_at="2026-11-19T10:00:00Z"),
        _movie(1, title="Newest title", fetched_at="2026-11-21T10:00:00+01:00"),
        _movie(2, title="No fetch time", fetched_at=None),
        _movie(3, title="Garbage fetch time", fetched_at="yesterday"),
        # fetch times as the load gets them: in UTC, digits past microseconds truncated,
        # none outside years 1-9999 in UTC
        _movie(60, fetched_at="2026-11-20 10:00:00.1234567-05:30"),
        _movie(61, fetched_at="0001-01-01T00:30:00+01:00"),
        _movie(62, fetched_at="9999-12-31T23:30:00-01:00"),
        _movie(63, fetched_at="0001-01-01T00:00:00Z"),
        # checks
        [1, 2, 3],
        "just text",
        _movie(0),
        _movie(-5),
        _movie(None),
        _movie("77"),
        _movie(30, title="   "),
        _movie(31, title=None),
        _movie(34, release_date="1999"),
        _movie(35, release_date="1999-7"),
        _movie(36, release_date="1999-07-04T12:00:00"),
        _movie(37, release_date=" 2001-01-01 "),
        _movie(38, runtime=-1),
        _movie(39, budget=-1, revenue=-1),
        _movie(40, popularity=-0.5),
        _movie(41, runtime=2**31),
        _movie(42, vote_count=2**40),
        _movie(43, vote_average=10.5),
        _movie(44, vote_average=-0.1),
        _movie(45, vote_average="NaN"),
        # odd types: null for that field only
        _movie(50, runtime="139", popularity="high", adult="yes", vote_average=None),
        _movie(51, runtime=139.5, budget=1e20, vote_count=True),
        _movie(52, title=12345, overview={"a": 1}, tagline=[1, "x"]),
        _movie(53, genres="Drama", keywords=None, production_companies=[]),
        _movie(
            54,
            genres=[
                {"id": 1, "name": "Sci-Fi"},
                {"id": None, "name": "no id"},
                {"id": 2, "name": ""},
                {"id": 3},
                "not an object",
                {"id": "4", "name": "string id"},
                {"id": 5, "name": "Science Fiction"},
            ],
            production_companies=[
                {"id": 9, "name": "No Country"},
                {"id": 10, "name": "X", "origin_country": None},
            ],
        ),
        _movie(55, vote_average=7.25, adult=True),
        _movie(56, vote_average=0.05),
        _movie(57, vote_average=2.675),
        _movie(58, release_date=None, runtime=None, genres=[{"id": 7, "name": 'Ünïcode "quoted"'}]),
    ]
    return records


def test_spark_and_pandas_model_movies_alike(spark: Any) -> None:
    _compare(spark, corpus())


#: malformed dates: the fallback quarantines them ("release_date: not a date"), which is what
#: Spark's check means; Spark's ``to_date`` (a cast, ANSI mode on in Spark 4) raises instead
MALFORMED_DATES = [_movie(32, release_date="1999-02-30"), _movie(33, release_date="soon")]


def test_malformed_release_dates_are_quarantined_by_the_fallback() -> None:
    import pandas as pd

    from cinepulse_pandas_fallback.movies import transform_movies

    docs = [
        to_document(
            Source(TOPIC, 0, i, b"k", None),
            json.dumps(r).encode(),
            datetime.now(UTC),
            movie_topic=True,
        )[1]
        for i, r in enumerate(MALFORMED_DATES)
    ]
    rows, held = transform_movies(pd.DataFrame(docs), active_rules())
    assert rows.empty
    assert held["quarantine_reason"].tolist() == ["release_date: not a date"] * 2


def test_spark_quarantines_malformed_release_dates_too(spark: Any) -> None:
    _compare(spark, [*corpus(), *MALFORMED_DATES])


def _compare(spark: Any, records: list[Any]) -> None:
    import pandas as pd

    from cinepulse_pandas_fallback.movies import transform_movies
    from cinepulse_spark_jobs.transforms import (
        latest_movies,
        model_movies,
        parse_movies,
        split_valid,
        validate_movies,
    )

    rules = active_rules()
    values = [json.dumps(r).encode() for r in records]
    frame = spark.createDataFrame(
        [(TOPIC, 0, offset, v) for offset, v in enumerate(values)],
        "topic string, partition int, offset long, value binary",
    )
    valid, held = split_valid(validate_movies(parse_movies(frame)))
    spark_rows = {
        r["movie_id"]: r.asDict() for r in model_movies(latest_movies(valid), rules).collect()
    }
    spark_held = {
        r["offset"]: (r["quarantine_rule"], r["quarantine_reason"]) for r in held.collect()
    }

    docs, dead = [], set()
    for offset, v in enumerate(values):
        try:
            docs.append(
                to_document(
                    Source(TOPIC, 0, offset, b"k", None), v, datetime.now(UTC), movie_topic=True
                )[1]
            )
        except Unusable:
            dead.add(offset)
    pd_rows, pd_held = transform_movies(pd.DataFrame(docs), rules)
    pandas_rows = {r["movie_id"]: r for r in pd_rows.to_dict("records")}
    pandas_held = {
        r["offset"]: (r["quarantine_rule"], r["quarantine_reason"])
        for r in pd_held.to_dict("records")
    }

    def same(column: str, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        if column in ("genres", "keywords", "companies"):
            return bool(json.loads(a) == json.loads(b))
        return bool(a == b) and type(a) is type(b)

    differences = [
        (movie_id, column, spark_rows[movie_id][column], pandas_rows[movie_id][column])
        for movie_id in spark_rows.keys() & pandas_rows.keys()
        for column in spark_rows[movie_id]
        if not same(column, spark_rows[movie_id][column], pandas_rows[movie_id][column])
    ]
    assert not differences, differences[:20]
    assert spark_rows.keys() == pandas_rows.keys()
    assert pandas_held == {o: h for o, h in spark_held.items() if o not in dead}
    assert spark_rows[1]["title"] == "Newest title"
    assert {i: spark_rows[i]["fetched_at"] for i in (1, 2, 60, 61, 62, 63)} == {
        1: "2026-11-21T09:00:00.000000Z",
        2: "2026-11-20T10:00:00.000000Z",  # its undated version lost
        60: "2026-11-20T15:30:00.123456Z",
        61: None,
        62: None,
        63: "0001-01-01T00:00:00.000000Z",
    }
    assert len(spark_held) >= 15


def test_a_replay_loads_the_window_s_movies_into_dim_movie(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    """A replay covers the movie topic too: dim_movie and its bridges through the shared
    load step (SCD type 1), the invalid ones in the main quarantine; a second replay
    changes nothing."""
    from cinepulse_pandas_fallback.job import run_window
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings

    arrived = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    docs = []
    for i, record in enumerate(corpus()):
        try:  # what the archiver dead-letters never reaches MongoDB
            value = json.dumps(record).encode()
            docs.append(
                to_document(Source(TOPIC, 0, i, b"k", None), value, arrived, movie_topic=True)[1]
            )
        except Unusable:
            continue
    with make_client(mongo_settings) as client:
        client[mongo_settings.database]["movies"].insert_many(docs)
    settings = PandasFallbackSettings(postgres=pg_settings, mongo=mongo_settings)
    window = (arrived - timedelta(hours=1), arrived + timedelta(hours=1))
    first = run_window(settings, active_rules(), *window, kind="replay", progress=None)
    assert first.movies_read == len(docs)

    import pandas as pd

    from cinepulse_pandas_fallback.movies import transform_movies

    expected, held = transform_movies(pd.DataFrame(docs), active_rules())
    assert first.written["dim_movie"] == len(expected)
    with connect(pg_settings) as conn:
        stored = conn.execute(
            "SELECT movie_id, title, release_date, vote_average, adult, source_flag"
            " FROM dim_movie ORDER BY movie_id"
        ).fetchall()
        genres = conn.execute(
            "SELECT g.name FROM bridge_movie_genre b JOIN dim_genre g USING (genre_id)"
            " WHERE b.movie_id = 1 ORDER BY g.genre_id"
        ).fetchall()
        quarantined = conn.execute(
            "SELECT source_offset, rule, reason FROM quarantine WHERE source_topic = %s"
            " ORDER BY source_offset",
            (TOPIC,),
        ).fetchall()
    assert [
        (r["movie_id"], r["title"], r["release_date"], r["vote_average"], r["adult"], "replay")
        for r in expected.sort_values("movie_id").to_dict("records")
    ] == stored
    assert {s[0]: s[1] for s in stored}[1] == "Newest title"
    assert genres == [("Drama",), ("Thriller",)]
    assert quarantined == [
        (r["offset"], r["quarantine_rule"], r["quarantine_reason"])
        for r in held.sort_values("offset").to_dict("records")
    ]
    again = run_window(settings, active_rules(), *window, kind="replay", progress=None)
    assert again.written["dim_movie"] == 0 and again.written["quarantine"] == 0
