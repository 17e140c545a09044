"""Parameter validation: 422 naming the field, before any query, and nothing reaching the
caches or the database."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.fakes import cached_app


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


@pytest.mark.parametrize(
    "url",
    [
        "/api/top_movies?offset=-1",
        "/api/top_movies?offset=1000001",
        "/api/top_movies?min_votes=0",
        "/api/top_movies?min_votes=1000000001",
        "/api/top_movies?limit=101",
        "/api/top_movies?window=year",
        "/api/top_movies?genre=" + "x" * 101,
        "/api/movies/0",
        "/api/emotion_trends?movie_id=0",
        "/api/emotion_trends?bucket=hour",
        "/api/trending?limit=0",
        "/api/trending?limit=101",
    ],
)
def test_an_out_of_range_value_is_422_and_reaches_neither_cache_nor_database(url: str) -> None:
    with cached_app() as (client, db, archiver, _now):
        r = client.get(url)
        assert r.status_code == 422, r.text
        assert db.queries == {} and db.connections == 0 and archiver.limits == []
        app: Any = client.app
        assert len(app.state.answer_cache) == 0 and len(app.state.trending_cache) == 0
