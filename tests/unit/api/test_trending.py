"""/api/trending: when the archiver is down, slow or odd (a mock transport), its limit, and
its answer kept briefly (CINEPULSE_TRENDING_CACHE_S)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from tests.unit.api.fakes import NO_DB, cached_app


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


def test_trending_is_kept_for_its_ttl_then_asked_again() -> None:
    with cached_app() as (client, db, archiver, now):
        first = client.get("/api/trending", params={"limit": 3})
        assert first.status_code == 200, first.text
        assert first.headers["cache-control"] == "public, max-age=5"
        assert first.json()["items"][0] == {"movie_id": 603, "title": "Movie 603", "events": 9}
        # the same limit, however spelled, within the TTL: neither archiver nor database
        for url in ("/api/trending?limit=3", "/api/trending?limit=03&minutes=1"):
            assert client.get(url).content == first.content
        now[0] = 4.9
        assert client.get("/api/trending", params={"limit": 3}).content == first.content
        assert archiver.limits == ["3"] and db.queries == {"movie_titles": 1}
        # CINEPULSE_TRENDING_CACHE_S (5 s) later: asked again
        now[0] = 5.0
        assert client.get("/api/trending", params={"limit": 3}).status_code == 200
        assert archiver.limits == ["3", "3"] and db.queries == {"movie_titles": 2}
        # another limit is another answer; a failure is not kept
        archiver.down = True
        assert client.get("/api/trending").status_code == 503
        archiver.down = False
        assert client.get("/api/trending").json()["limit"] == 10
        assert archiver.limits == ["3", "3", "10", "10"]
        app: Any = client.app
        assert len(app.state.trending_cache) == 2


def test_trending_cache_off() -> None:
    with cached_app(trending_cache_s=0) as (client, _db, archiver, _now):
        for _ in range(3):
            assert client.get("/api/trending", params={"limit": 3}).status_code == 200
        assert archiver.limits == ["3", "3", "3"]
