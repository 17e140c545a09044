"""The api without a database: parameter validation (422 naming the field), liveness,
readiness failing when PostgreSQL does not answer, window bounds and settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from cinepulse_api.app import create_app, window_bounds
from cinepulse_api.settings import ApiSettings
from cinepulse_common.settings import PostgresSettings


@pytest.fixture
def client() -> Iterator[TestClient]:
    # nothing listens on port 9: the pool never gets a connection
    pg = PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/none?connect_timeout=1")
    settings = ApiSettings(postgres=pg, readiness_timeout_s=0.5)
    with TestClient(create_app(settings)) as c:
        yield c


def test_bad_parameters_are_422_naming_the_field(client: TestClient) -> None:
    r = client.get("/api/top_movies", params={"window": "year", "limit": 500})
    assert r.status_code == 422
    assert sorted(e["field"] for e in r.json()["detail"]) == ["limit", "window"]
    r = client.get("/api/user_stats/" + "x" * 129)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "user_id"


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
