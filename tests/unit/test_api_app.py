"""The api without a database: parameter validation (422 naming the field), liveness,
readiness failing when PostgreSQL does not answer, /api/trending when the archiver is down,
slow or odd (a mock transport), window bounds and settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient

from cinepulse_api.app import create_app, window_bounds
from cinepulse_api.settings import ApiSettings
from cinepulse_common.settings import PostgresSettings

# nothing listens on port 9: the pool never gets a connection
NO_DB = PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/none?connect_timeout=1")


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = ApiSettings(postgres=NO_DB, readiness_timeout_s=0.5)
    with TestClient(create_app(settings)) as c:
        yield c


def _trending(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
    settings = ApiSettings(postgres=NO_DB, archiver_timeout_s=0.5)
    app = create_app(settings, archiver_transport=httpx.MockTransport(handler))
    with TestClient(app) as c:
        return c.get("/api/trending", params={"limit": 3})


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (_raise(httpx.ConnectError("refused")), "cannot be reached (ConnectError)"),
        (_raise(httpx.ReadTimeout("slow")), "did not answer within 0.5s"),
        (lambda _r: httpx.Response(500, text="boom"), "answered 500"),
    ],
    ids=["down", "timeout", "failing"],
)
def test_trending_is_503_with_retry_after_when_the_archiver_is_unavailable(
    handler: Callable[[httpx.Request], httpx.Response], reason: str
) -> None:
    r = _trending(handler)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    detail = r.json()["detail"]
    assert detail.startswith("trending is unavailable: the archiver") and reason in detail


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"minutes": 15, "movies": [{"movie_id": "x", "events": 1}]}),
        httpx.Response(200, json={"movies": []}),
        httpx.Response(422, json={"detail": "limit must be at most 1000"}),
    ],
    ids=["not-json", "bad-movie-id", "no-minutes", "archiver-422"],
)
def test_trending_is_502_when_the_archiver_answers_nonsense(response: httpx.Response) -> None:
    r = _trending(lambda _r: response)
    assert r.status_code == 502
    assert "archiver" in r.json()["detail"]


def test_trending_with_no_movies_needs_no_database() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"minutes": 15, "movies": [], "partitions": []})

    r = _trending(handler)
    assert r.status_code == 200, r.text
    assert r.json() == {"minutes": 15, "limit": 3, "items": []}
    assert r.headers["cache-control"] == "public, max-age=5"
    assert [str(u) for u in seen] == ["http://127.0.0.1:6066/counters/trending?limit=3"]


def test_trending_limit_is_validated(client: TestClient) -> None:
    for limit in (0, 101, "ten"):
        r = client.get("/api/trending", params={"limit": limit})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "limit"


def test_bad_parameters_are_422_naming_the_field(client: TestClient) -> None:
    r = client.get("/api/top_movies", params={"window": "year", "limit": 500})
    assert r.status_code == 422
    assert sorted(e["field"] for e in r.json()["detail"]) == ["limit", "window"]
    r = client.get("/api/user_stats/" + "x" * 129)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "user_id"


def test_nul_characters_are_422_not_a_database_error(client: TestClient) -> None:
    # PostgreSQL text cannot hold NUL: refused before any query runs
    for url, field in [
        ("/api/user_stats/a%00b", "user_id"),
        ("/api/top_movies?genre=Dra%00ma", "genre"),
        ("/api/emotion_trends?genre=%00", "genre"),
    ]:
        r = client.get(url)
        assert r.status_code == 422, (url, r.text)
        [error] = r.json()["detail"]
        assert error["field"] == field and "NUL" in error["reason"], error


def test_liveness_ok_and_readiness_fails_without_database(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["postgres"].startswith("error")


def test_window_bounds_end_today_inclusive() -> None:
    today = date(2026, 3, 2)
    assert window_bounds("day", today) == (20260302, 20260302)
    assert window_bounds("week", today) == (20260224, 20260302)
    assert window_bounds("month", today) == (20260201, 20260302)
    assert window_bounds("all", today)[0] == 0


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@db/x")
    s = ApiSettings()
    assert (s.port, s.bayes_prior_votes, s.cache_max_age_s) == (8000, 10.0, 60)
    assert (s.archiver_url, s.archiver_timeout_s) == ("http://127.0.0.1:6066", 1.0)
