"""The api's access rules, ETags and metrics against a real, migrated PostgreSQL holding the
data of ``test_api``: who may read a user's data (internal clients, frontend clients with a
user token, nobody else), public or keyed aggregates, 304 on a matching If-None-Match, and
the database and error metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cinepulse_api.adapters.queries import Query
from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import sign_user_token
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from tests.integration.test_api import TODAY, fill_warehouse

pytestmark = pytest.mark.integration

SECRET = "a-secret-shared-with-the-frontend-backend"
AUTH: dict[str, Any] = {
    "keys": {"explorer": "explorer-key", "web": "web-key"},
    "roles": {"explorer": "internal", "web": "frontend"},
    "user_token_secret": SECRET,
}
EXPLORER = {"X-API-Key": "explorer-key"}


def _web(user: str, ttl: int = 300) -> dict[str, str]:
    return {"X-API-Key": "web-key", "X-User-Token": sign_user_token(SECRET, user, ttl)}


@pytest.fixture
def warehouse(pg_settings: PostgresSettings) -> PostgresSettings:
    fill_warehouse(pg_settings)
    return pg_settings


def _client(pg: PostgresSettings, **auth: Any) -> TestClient:
    settings = ApiSettings(postgres=pg, log_json=False, auth=AUTH | auth)
    return TestClient(create_app(settings, today=lambda: TODAY))


@pytest.fixture
def client(warehouse: PostgresSettings) -> Iterator[TestClient]:
    with _client(warehouse) as c:
        yield c


# --- per-user data ---------------------------------------------------------------------------
def test_an_internal_client_reads_any_user(client: TestClient) -> None:
    r = client.get("/api/user_stats/critic", headers=EXPLORER)
    assert r.status_code == 200, r.text
    assert r.json()["total_events"] == 10
    assert r.headers["cache-control"] == "private, max-age=60"
    assert r.headers["vary"] == "X-API-Key, X-User-Token"
    # and learns that a user does not exist
    assert client.get("/api/user_stats/nobody", headers=EXPLORER).status_code == 404


def test_a_frontend_client_reads_only_its_users_data(client: TestClient) -> None:
    r = client.get("/api/user_stats/critic", headers=_web("critic"))
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == "critic"
    # the same client, the same token, another user: refused, before the data is read
    r = client.get("/api/user_stats/someone", headers=_web("critic"))
    assert r.status_code == 403
    assert "for another user" in r.json()["detail"]
    # a token for a user with no events: 404 for that user only; for anyone else 403, so an
    # unauthorised caller cannot tell which users exist
    assert client.get("/api/user_stats/nobody", headers=_web("nobody")).status_code == 404
    assert client.get("/api/user_stats/critic", headers=_web("nobody")).status_code == 403
    # no token, an expired token: 401 naming the header
    r = client.get("/api/user_stats/critic", headers={"X-API-Key": "web-key"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "X-User-Token"
    r = client.get("/api/user_stats/critic", headers=_web("critic", ttl=-5))
    assert r.status_code == 401 and r.json()["detail"] == "invalid X-User-Token: expired"


def test_without_a_key_no_user_data_at_all(client: TestClient) -> None:
    for headers in (
        {},
        {"X-API-Key": "guess"},
        {"X-User-Token": sign_user_token(SECRET, "critic")},
    ):
        r = client.get("/api/user_stats/critic", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "X-API-Key"
        assert "critic" not in r.text


def test_aggregates_are_public_by_default(client: TestClient) -> None:
    for path in ("/api/top_movies", "/api/movies/2", "/api/emotion_trends"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "public, max-age=60"
        assert "vary" not in r.headers


def test_keyed_aggregates(warehouse: PostgresSettings) -> None:
    with _client(warehouse, public_aggregates=False) as c:
        assert c.get("/api/top_movies").status_code == 401
        for headers in (EXPLORER, {"X-API-Key": "web-key"}):  # any known client
            r = c.get("/api/top_movies", headers=headers)
            assert r.status_code == 200
            # no shared cache may hand it to a caller without a key
            assert r.headers["cache-control"] == "private, max-age=60"


def test_auth_disabled_is_open(warehouse: PostgresSettings) -> None:
    settings = ApiSettings(postgres=warehouse, log_json=False, auth={"enabled": False})  # type: ignore[arg-type]
    with TestClient(create_app(settings, today=lambda: TODAY)) as c:
        assert c.get("/api/user_stats/critic").status_code == 200
        assert c.get("/api/top_movies").status_code == 200


# --- ETag ------------------------------------------------------------------------------------
def test_etag_and_304(client: TestClient) -> None:
    r = client.get("/api/top_movies", params={"window": "week"})
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    # the same data, the same tag; other parameters, another answer and another tag
    assert client.get("/api/top_movies", params={"window": "week"}).headers["etag"] == etag
    other = client.get("/api/top_movies", params={"window": "all"}).headers["etag"]
    assert other != etag
    for header in (etag, f"W/{etag}", f'"stale", {etag}', "*"):
        r = client.get(
            "/api/top_movies", params={"window": "week"}, headers={"If-None-Match": header}
        )
        assert r.status_code == 304, header
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == "public, max-age=60"
    r = client.get("/api/top_movies", params={"window": "week"}, headers={"If-None-Match": other})
    assert r.status_code == 200 and r.json()["window"] == "week"


def test_etag_on_every_read_and_private_304(client: TestClient) -> None:
    for path in ("/api/movies/2", "/api/emotion_trends?bucket=week"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["etag"]
        again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    r = client.get("/api/user_stats/critic", headers=_web("critic"))
    etag = r.headers["etag"]
    again = client.get("/api/user_stats/critic", headers=_web("critic") | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == "private, max-age=60"
    # the access rules come first: a matching tag does not get another user a 304
    r = client.get("/api/user_stats/critic", headers=_web("other") | {"If-None-Match": etag})
    assert r.status_code == 403
    # errors carry no tag
    assert "etag" not in client.get("/api/movies/99").headers


# --- metrics ---------------------------------------------------------------------------------
def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_latency_database_time_and_errors(client: TestClient) -> None:
    before = client.get("/metrics").text
    client.get("/api/top_movies")
    client.get("/api/top_movies")
    client.get("/api/user_stats/critic", headers=EXPLORER)
    client.get("/api/movies/99")  # 404
    client.get("/api/movies/0")  # 422
    client.get("/api/user_stats/critic")  # 401
    client.get("/api/user_stats/critic", headers=_web("x"))  # 403
    after = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    # latency by route (template, not the raw path)
    assert (
        delta(
            "cinepulse_api_http_request_duration_seconds_count",
            method="GET",
            route="/api/top_movies",
        )
        == 2
    )
    # database time per query, by the query's name
    q = "cinepulse_api_db_query_duration_seconds"
    # the second ranking came from the answer cache: one query for two answers
    assert delta(f"{q}_count", query="top_movies") == 1
    assert delta(f"{q}_count", query="user_stats") == 1
    assert delta(f"{q}_sum", query="top_movies") > 0
    # one pooled connection per answer that reads the database (top_movies, user_stats, 404)
    assert delta("cinepulse_api_db_pool_wait_seconds_count") == 3
    # errors by route and status
    errors = "cinepulse_api_http_errors_total"
    assert delta(errors, route="/api/movies/{movie_id}", status="404") == 1
    assert delta(errors, route="/api/movies/{movie_id}", status="422") == 1
    assert delta(errors, route="/api/user_stats/{user_id}", status="401") == 1
    assert delta(errors, route="/api/user_stats/{user_id}", status="403") == 1
    assert delta(errors, route="/api/top_movies", status="200") == 0


def test_a_failing_query_is_counted_and_answered_503(warehouse: PostgresSettings) -> None:
    # another session holds a lock the query needs: the statement timeout (200 ms) cancels
    # it, the caller gets 503 with Retry-After, and the failure is counted by query name
    pg = warehouse.model_copy(update={"statement_timeout_ms": 200})
    settings = ApiSettings(postgres=pg, log_json=False, auth=AUTH)
    labels = {"error": "QueryCanceled", "query": "emotion_trends"}
    with TestClient(create_app(settings, today=lambda: TODAY)) as c, connect(warehouse) as locker:
        before = c.get("/metrics").text
        locker.execute("LOCK TABLE agg_emotion_daily IN ACCESS EXCLUSIVE MODE")
        r = c.get("/api/emotion_trends", params={"bucket": "month"})
        locker.rollback()
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert r.json() == {"detail": "the database is unavailable (QueryCanceled); retry later"}
        after = c.get("/metrics").text
        # the lock gone, the same request succeeds
        assert c.get("/api/emotion_trends", params={"bucket": "month"}).status_code == 200
    assert _sample(after, "cinepulse_api_db_errors_total", **labels) == (
        _sample(before, "cinepulse_api_db_errors_total", **labels) + 1
    )
    assert (
        _sample(after, "cinepulse_api_http_errors_total", route="/api/emotion_trends", status="503")
        == _sample(
            before, "cinepulse_api_http_errors_total", route="/api/emotion_trends", status="503"
        )
        + 1
    )


def test_aggregate_answers_are_kept_for_a_while_and_user_data_never(
    warehouse: PostgresSettings,
) -> None:
    def queries_run(c: TestClient, path: str, query: str, **headers: str) -> float:
        before = _sample(
            c.get("/metrics").text, "cinepulse_api_db_query_duration_seconds_count", query=query
        )
        for _ in range(3):
            assert c.get(path, headers=headers).status_code == 200
        after = _sample(
            c.get("/metrics").text, "cinepulse_api_db_query_duration_seconds_count", query=query
        )
        return after - before

    with _client(warehouse) as c:
        assert queries_run(c, "/api/emotion_trends?bucket=week", "emotion_trends") == 1
        assert queries_run(c, "/api/movies/2", "movie_totals") == 1
        assert queries_run(c, "/api/user_stats/critic", "user_stats", **EXPLORER) == 3
    settings = ApiSettings(postgres=warehouse, log_json=False, auth=AUTH, answer_cache_s=0)
    with TestClient(create_app(settings, today=lambda: TODAY)) as c:
        assert queries_run(c, "/api/emotion_trends?bucket=week", "emotion_trends") == 3


def test_the_api_sessions_are_read_only(warehouse: PostgresSettings) -> None:
    write = Query("write", "INSERT INTO dim_genre VALUES (999, 'Western', 'spark')")
    with _client(warehouse) as c:
        api = c.app.state.warehouse  # type: ignore[attr-defined]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.portal.call(api.fetch, write, {})  # type: ignore[union-attr]
        # and the pool is still usable: each statement is its own transaction
        assert c.get("/api/movies/2").status_code == 200
