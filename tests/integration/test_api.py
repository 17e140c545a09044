"""The serving API against a real, migrated PostgreSQL database: movies and events loaded
through the real load step (``load_movies`` / ``load_events``), daily aggregates inserted as
the aggregation job would write them; every answer is checked value by value."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS, load_events, load_movies

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 20)
DRAMA, COMEDY, ACTION = (
    {"id": 18, "name": "Drama"},
    {"id": 35, "name": "Comedy"},
    {"id": 28, "name": "Action"},
)


def _movie(movie_id: int, title: str, genres: list[dict[str, Any]]) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "movie_id": movie_id,
        "title": title,
        "original_title": title,
        "original_language": "en",
        "status": "Released",
        "release_date": date(1999, 3, 31),
        "runtime_minutes": 136,
        "adult": False,
        "genres": json.dumps(genres),
        "keywords": "[]",
        "companies": "[]",
    }
    return tuple(values.get(c) for c in MOVIE_COLUMNS)


def _event(event_type: str, movie_id: int, at: datetime, **extra: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "user_id": "critic",
        "movie_id": movie_id,
        "date_key": int(at.strftime("%Y%m%d")),
        "occurred_at": at,
        "received_at": at,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 0,
        "payload": "{}",
        **extra,
    }
    return tuple(values.get(c) for c in EVENT_COLUMNS)


def _watch(movie_id: int, at: datetime, position: float, duration: float) -> tuple[Any, ...]:
    ratio = min(position / duration, 1)
    return _event(
        "watch",
        movie_id,
        at,
        position_seconds=position,
        duration_seconds=duration,
        completion_ratio=round(ratio, 4),
        completed=ratio >= 0.9,
    )


def _dk(d: date) -> int:
    return int(d.strftime("%Y%m%d"))


def _agg(
    conn: Any,
    day: date,
    movie_id: int,
    ratings: int = 0,
    rating_sum: float = 0,
    watches: int = 0,
    comments: int = 0,
    clicks: int = 0,
) -> None:
    conn.execute(
        """INSERT INTO agg_movie_daily (date_key, movie_id, events, users, watches,
               completed_watches, watch_seconds, ratings, rating_sum, comments, clicks,
               source_flag)
           VALUES (%s, %s, %s, 1, %s, 0, %s, %s, %s, %s, %s, 'spark')""",
        (
            _dk(day),
            movie_id,
            ratings + watches + comments + clicks,
            watches,
            watches * 600,
            ratings,
            rating_sum,
            comments,
            clicks,
        ),
    )


def _emotion(conn: Any, day: date, movie_id: int, emotion: str, n: int, s: float) -> None:
    conn.execute(
        """INSERT INTO agg_emotion_daily (date_key, movie_id, emotion, comments, sentiment_sum,
               source_flag) VALUES (%s, %s, %s, %s, %s, 'spark')""",
        (_dk(day), movie_id, emotion, n, s),
    )


T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
LAST = datetime(2026, 11, 19, 21, 30, tzinfo=UTC)


def fill_warehouse(pg_settings: PostgresSettings) -> None:
    """The movies, events and aggregates every test here (and the schema fuzzing) reads."""
    with connect(pg_settings) as conn:
        load_movies(
            conn,
            [
                _movie(1, "Alpha", [DRAMA]),
                _movie(2, "Beta", [DRAMA, COMEDY]),
                _movie(3, "Gamma", [COMEDY]),
                _movie(4, "Delta", [ACTION]),
            ],
            source_flag="tmdb-fetcher",
        )
        load_events(
            conn,
            [
                _watch(1, T0, 4000, 5400),
                _watch(2, T0 + timedelta(hours=1), 5402, 5400),  # counted as 5400
                _event("rate", 1, T0, rating=4.5),
                _event("rate", 2, T0, rating=4.5),
                _event("rate", 3, T0, rating=3.0),
                _event("rate", 4, T0, rating=5.0),
                _event("comment", 2, T0, comment_text="great", emotion="joy", sentiment=0.8),
                _event("click", 3, T0, target="poster"),
                _event("click", 1, T0, target="trailer"),
                _event("click", 99, LAST, target="poster"),  # a movie not (yet) loaded
            ],
            source_flag="spark",
        )
        # the week ending TODAY: Alpha 2 ratings (mean 5.0), Beta 20 (4.5), Gamma 10 (3.0)
        _agg(conn, TODAY, 1, ratings=2, rating_sum=10)
        _agg(conn, TODAY, 2, ratings=12, rating_sum=54, watches=3, comments=1, clicks=2)
        _agg(conn, TODAY - timedelta(days=3), 2, ratings=8, rating_sum=36, watches=1)
        _agg(conn, TODAY, 3, ratings=10, rating_sum=30)
        # Delta: only long ago (in "all", not in "month")
        _agg(conn, TODAY - timedelta(days=40), 4, ratings=100, rating_sum=500)
        # a day with no ratings does not count as a rated movie
        _agg(conn, TODAY, 5, clicks=7)
        _emotion(conn, date(2026, 11, 16), 1, "joy", 2, 1.6)  # a Monday
        _emotion(conn, date(2026, 11, 17), 1, "sadness", 1, -0.5)
        _emotion(conn, date(2026, 11, 17), 3, "joy", 1, 0.4)
        _emotion(conn, date(2026, 11, 24), 2, "anger", 2, -1.0)
        _emotion(conn, date(2026, 12, 1), 5, "neutral", 4, 0.0)


#: an internal client (reads any user's data), as the tests here call the api
INTERNAL_KEY = "it-internal-key"
TEST_AUTH: dict[str, Any] = {"keys": {"it": INTERNAL_KEY}, "roles": {"it": "internal"}}


@pytest.fixture
def client(pg_settings: PostgresSettings) -> Iterator[TestClient]:
    fill_warehouse(pg_settings)
    settings = ApiSettings(postgres=pg_settings, log_json=False, auth=TEST_AUTH)
    with TestClient(create_app(settings, today=lambda: TODAY)) as c:
        c.headers["X-API-Key"] = INTERNAL_KEY
        yield c


def _bayes(v: int, mean: float, c: float, m: float = 10) -> float:
    return v / (v + m) * mean + m / (v + m) * c


def test_top_movies_ranks_by_the_bayesian_average(client: TestClient) -> None:
    r = client.get("/api/top_movies", params={"window": "week"})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "public, max-age=60"
    body = r.json()
    c = 130 / 32  # every rating of the week: (10 + 90 + 30) / (2 + 20 + 10)
    assert body["mean_rating"] == pytest.approx(c)
    assert body["total"] == 3 and body["limit"] == 20 and body["offset"] == 0
    assert body["window"] == "week" and body["genre"] is None
    # Alpha has the best mean (5.0) but only 2 ratings: the prior pulls it below Beta
    assert [(i["movie_id"], i["title"], i["ratings"]) for i in body["items"]] == [
        (2, "Beta", 20),
        (1, "Alpha", 2),
        (3, "Gamma", 10),
    ]
    scores = [i["score"] for i in body["items"]]
    assert scores == pytest.approx([4.3541667, 4.21875, 3.53125])
    assert scores == pytest.approx([_bayes(20, 4.5, c), _bayes(2, 5.0, c), _bayes(10, 3.0, c)])
    assert [i["mean_rating"] for i in body["items"]] == pytest.approx([4.5, 5.0, 3.0])


def test_top_movies_filters_windows_genres_votes_and_pages(client: TestClient) -> None:
    def ids(**params: Any) -> tuple[list[int], int]:
        r = client.get("/api/top_movies", params=params)
        assert r.status_code == 200, r.text
        return [i["movie_id"] for i in r.json()["items"]], r.json()["total"]

    assert ids(window="week", genre="drama") == ([2, 1], 2)  # names match in any case
    assert ids(window="week", genre="Comedy") == ([2, 3], 2)
    assert ids(window="week", min_votes=10) == ([2, 3], 2)
    assert ids(window="week", limit=1, offset=1) == ([1], 3)
    assert ids(window="week", offset=5) == ([], 3)
    assert ids(window="all")[0][0] == 4  # 100 ratings of 5.0, 40 days ago
    assert ids(window="month") == ([2, 1, 3], 3)
    # today only: Beta's 12 ratings of today (54) - C = 94 / 24
    r = client.get("/api/top_movies", params={"window": "day"}).json()
    assert [(i["movie_id"], i["ratings"]) for i in r["items"]] == [(2, 12), (1, 2), (3, 10)]
    assert r["items"][0]["score"] == pytest.approx(_bayes(12, 4.5, 94 / 24))


def test_top_movies_errors_name_the_problem(client: TestClient) -> None:
    r = client.get("/api/top_movies", params={"genre": "Western"})
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown genre 'Western'"}
    for params, field in [
        ({"window": "year"}, "window"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"min_votes": "many"}, "min_votes"),
    ]:
        r = client.get("/api/top_movies", params=params)
        assert r.status_code == 422, params
        assert [e["field"] for e in r.json()["detail"]] == [field]


def test_walking_offsets_past_the_rate_limit_is_429(pg_settings: PostgresSettings) -> None:
    """Each distinct offset is one query of the database: a caller's limit bounds how many
    (OWASP API4); a 429 names the limit and says when to retry."""
    fill_warehouse(pg_settings)
    settings = ApiSettings(
        postgres=pg_settings, log_json=False, auth=TEST_AUTH, rate_limit={"per_client": "3/hour"}
    )
    with TestClient(create_app(settings, today=lambda: TODAY)) as c:
        c.headers["X-API-Key"] = INTERNAL_KEY
        statuses = [c.get("/api/top_movies", params={"offset": n}).status_code for n in range(4)]
        assert statuses == [200, 200, 200, 429]
        r = c.get("/api/top_movies", params={"offset": 9})
        assert r.json() == {"detail": "rate limit 3 per 1 hour exceeded for client 'it'"}
        assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining"] == "0"


def test_movie_detail_with_genres_and_all_time_totals(client: TestClient) -> None:
    r = client.get("/api/movies/2")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "public, max-age=60"
    body = r.json()
    assert body["title"] == "Beta" and body["release_date"] == "1999-03-31"
    assert body["genres"] == [{"genre_id": 35, "name": "Comedy"}, {"genre_id": 18, "name": "Drama"}]
    assert body["totals"] == {
        "ratings": 20,
        "mean_rating": 4.5,
        "watches": 4,
        "completed_watches": 0,
        "watch_seconds": 2400.0,
        "comments": 1,
        "clicks": 2,
    }
    # a movie without aggregates yet
    totals = client.get("/api/movies/1").json()["totals"]
    assert totals["ratings"] == 2 and totals["mean_rating"] == 5.0
    assert client.get("/api/movies/99").status_code == 404
    assert client.get("/api/movies/99").json() == {"detail": "unknown movie 99"}
    r = client.get("/api/movies/0")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "movie_id"


def test_user_stats_from_the_facts(client: TestClient) -> None:
    r = client.get("/api/user_stats/critic")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["events"] == {"watch": 2, "rate": 4, "comment": 1, "click": 3}
    assert body["total_events"] == 10
    assert body["watch_seconds"] == 9400.0  # 4000 + min(5402, 5400)
    assert body["rating_distribution"] == {"3.0": 1, "4.5": 2, "5.0": 1}
    # Drama: movie 1 (watch, rate, click) + movie 2 (watch, rate, comment) = 6;
    # Comedy: movie 2 (3) + movie 3 (rate, click) = 5; Action: movie 4 (rate) = 1
    assert body["favourite_genres"] == [
        {"genre": "Drama", "events": 6},
        {"genre": "Comedy", "events": 5},
        {"genre": "Action", "events": 1},
    ]
    assert datetime.fromisoformat(body["last_activity"]) == LAST
    r = client.get("/api/user_stats/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["detail"]


def test_emotion_trends_per_movie_genre_and_overall(client: TestClient) -> None:
    r = client.get("/api/emotion_trends", params={"movie_id": 1})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.json()["buckets"] == [
        {
            "start": "2026-11-16",
            "comments": 2,
            "mean_sentiment": pytest.approx(0.8),
            "emotions": {"joy": {"comments": 2, "mean_sentiment": pytest.approx(0.8)}},
        },
        {
            "start": "2026-11-17",
            "comments": 1,
            "mean_sentiment": -0.5,
            "emotions": {"sadness": {"comments": 1, "mean_sentiment": -0.5}},
        },
    ]
    week = client.get("/api/emotion_trends", params={"movie_id": 1, "bucket": "week"}).json()
    assert [(b["start"], b["comments"]) for b in week["buckets"]] == [("2026-11-16", 3)]
    assert week["buckets"][0]["mean_sentiment"] == pytest.approx(1.1 / 3)
    comedy = client.get("/api/emotion_trends", params={"genre": "Comedy", "bucket": "week"})
    assert [
        (b["start"], b["comments"], round(b["mean_sentiment"], 6), sorted(b["emotions"]))
        for b in comedy.json()["buckets"]
    ] == [("2026-11-16", 1, 0.4, ["joy"]), ("2026-11-23", 2, -0.5, ["anger"])]
    overall = client.get("/api/emotion_trends", params={"bucket": "month"}).json()
    assert [(b["start"], b["comments"]) for b in overall["buckets"]] == [
        ("2026-11-01", 6),
        ("2026-12-01", 4),
    ]
    assert overall["buckets"][0]["mean_sentiment"] == pytest.approx(0.5 / 6)
    assert client.get("/api/emotion_trends", params={"genre": "Western"}).status_code == 404
    r = client.get("/api/emotion_trends", params={"bucket": "year"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "bucket"
    r = client.get("/api/emotion_trends", params={"movie_id": 1, "genre": "Comedy"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "genre"


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"postgres": "ok"}
    client.get("/api/movies/1")
    metrics = client.get("/metrics").text
    assert (
        'cinepulse_api_http_requests_total{method="GET",route="/api/movies/{movie_id}",'
        'status="200"}' in metrics
    )


def test_trending_joins_live_counters_with_titles(pg_settings: PostgresSettings) -> None:
    fill_warehouse(pg_settings)
    archiver: dict[str, Any] = {"answer": None, "requests": []}

    def handler(request: httpx.Request) -> httpx.Response:
        archiver["requests"].append(request)
        if isinstance(archiver["answer"], Exception):
            raise archiver["answer"]
        return httpx.Response(200, json=archiver["answer"])

    archiver["answer"] = {
        "minutes": 15,
        "movies": [
            {"movie_id": 2, "events": 9},
            {"movie_id": 99, "events": 4},  # not (yet) in dim_movie
            {"movie_id": 1, "events": 4},
        ],
        "partitions": [{"topic": "cinepulse.user-events.rate", "partition": 0}],
    }
    # every request asks the archiver (its answers are not kept: the cache has unit tests)
    settings = ApiSettings(postgres=pg_settings, log_json=False, auth=TEST_AUTH, trending_cache_s=0)
    app = create_app(settings, archiver_transport=httpx.MockTransport(handler))
    with TestClient(app) as client:
        r = client.get("/api/trending", params={"limit": 3})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "public, max-age=5"
        assert r.json() == {
            "minutes": 15,
            "limit": 3,
            "items": [
                {"movie_id": 2, "title": "Beta", "events": 9},
                {"movie_id": 99, "title": None, "events": 4},
                {"movie_id": 1, "title": "Alpha", "events": 4},
            ],
        }
        assert archiver["requests"][0].url.path == "/counters/trending"
        assert archiver["requests"][0].url.params["limit"] == "3"
        # the default limit is 10; never more items than asked for
        assert client.get("/api/trending").json()["limit"] == 10
        assert archiver["requests"][1].url.params["limit"] == "10"
        assert len(client.get("/api/trending", params={"limit": 2}).json()["items"]) == 2

        archiver["answer"] = httpx.ConnectError("connection refused")
        r = client.get("/api/trending")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "archiver cannot be reached" in r.json()["detail"]
        archiver["answer"] = httpx.ReadTimeout("timed out")
        r = client.get("/api/trending")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "did not answer within 1s" in r.json()["detail"]
        # the database side is unaffected
        assert client.get("/api/movies/1").status_code == 200
