"""Serving without a database: a hand-made model version in memory (known users, cold
start, genres, exclusions, similar movies, the precomputed and scored paths), the artefact's
round trip through bytes, and the HTTP layer (k bounds as 422 naming the field, 404s,
strategies, readiness) with the version swapped in by hand; who may read which user's
recommendations (the api's keys, roles and user tokens: 401/403 before the model is read)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient

from cinepulse_common.access import sign_user_token
from cinepulse_common.settings import PostgresSettings
from cinepulse_recommender.app import create_app
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.recommend import (
    MODEL,
    POPULAR,
    POPULAR_IN_GENRE,
    PRECOMPUTED,
    SCORED,
    Popularity,
    Recommender,
    UnknownGenreError,
    UnknownMovieError,
)
from cinepulse_recommender.settings import RecommenderSettings

NO_DB = PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/none?connect_timeout=1")
SECRET = "s" * 32
#: the api's test key set: the recommender takes the same keys and roles
AUTH = {
    "keys": {"explorer": "internal-key", "web": "frontend-key", "partner": "partner-key"},
    "roles": {"explorer": "internal", "web": "frontend"},
    "user_token_secret": SECRET,
}
NOW = 1_800_000_000.0

MOVIES = [101, 102, 103, 104, 105, 106]
GENRES = [["Drama"], ["Drama", "Comedy"], ["Comedy"], ["Action"], ["Action"], ["Drama"]]


def artefact() -> Artefact:
    """Two users in a 2-d space: 'alice' likes the first axis (dramas), 'bob' the second.
    Movie 106 is not a candidate (no training pair)."""
    item = np.array(
        [[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32
    )
    seen = sp.csr_matrix(
        np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=np.float32)
    )  # alice saw 101, bob saw 105
    return Artefact(
        user_ids=np.array(["alice", "bob"]),
        item_ids=np.array(MOVIES, dtype=np.int64),
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        item_factors=item,
        item_bias=np.zeros(6, dtype=np.float32),
        candidates=np.array([True, True, True, True, True, False]),
        popularity=np.array([5.0, 1.0, 4.0, 3.0, 2.0, 0.0]),
        seen=seen,
        trained=seen,
        titles=[f"Movie {m}" for m in MOVIES],
        genres=GENRES,
        meta={"trained_at": 1_700_000_000.0},
    )


@pytest.fixture
def rec() -> Recommender:
    return Recommender.from_artefact("v1", artefact(), top_n=3)


def ids(answer: object) -> list[int]:
    return [i.movie_id for i in answer.items]  # type: ignore[attr-defined]


def test_known_user_gets_the_model_without_seen_items(rec: Recommender) -> None:
    a = rec.recommend("alice", 2)
    assert (a.strategy, a.path) == (MODEL, PRECOMPUTED)
    assert ids(a) == [102, 103]  # 101 seen, 106 not a candidate
    assert [i.title for i in a.items] == ["Movie 102", "Movie 103"]
    # beyond the precomputed list (top_n = 3): scored on the fly, same order
    b = rec.recommend("alice", 4)
    assert (b.strategy, b.path) == (MODEL, SCORED)
    assert ids(b) == [102, 103, 104, 105]
    # seen items allowed: scored, 101 first
    c = rec.recommend("alice", 2, exclude_seen=False)
    assert (c.path, ids(c)) == (SCORED, [101, 102])


def test_genre_filter_for_known_users(rec: Recommender) -> None:
    a = rec.recommend("bob", 3, genre="action")  # case-insensitive
    assert (a.strategy, ids(a)) == (MODEL, [104])  # 105 seen
    assert rec.recommend("alice", 1, genre="Comedy").items[0].movie_id == 102
    with pytest.raises(UnknownGenreError):
        rec.recommend("alice", 1, genre="Western")


def test_cold_start_users_get_popular_movies(rec: Recommender) -> None:
    a = rec.recommend("newcomer", 3)
    assert (a.strategy, ids(a)) == (POPULAR, [101, 103, 104])
    assert [i.score for i in a.items] == [5.0, 4.0, 3.0]
    b = rec.recommend("newcomer", 5, genre="Drama")
    assert (b.strategy, ids(b)) == (POPULAR_IN_GENRE, [101, 102])  # 106: nobody


def test_similar_movies_by_cosine_and_unknown_movies(rec: Recommender) -> None:
    a = rec.similar(101, 2)
    assert (a.strategy, ids(a)) == (MODEL, [102, 103])  # itself and 106 left out
    assert a.items[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    with pytest.raises(UnknownMovieError):
        rec.similar(999, 2)


def test_popularity_only_without_a_model() -> None:
    pop = Popularity(
        item_ids=np.array([1, 2, 3], dtype=np.int64),
        popularity=np.array([1.0, 3.0, 2.0]),
        titles=["A", None, "C"],
        genres=[["Drama"], ["Comedy"], ["Drama"]],
    )
    rec = Recommender(None, None, pop)
    assert ids(rec.recommend("anyone", 10)) == [2, 3, 1]
    s = rec.similar(1, 5)
    assert (s.strategy, ids(s)) == (POPULAR_IN_GENRE, [3])


def test_artefact_round_trips_through_bytes() -> None:
    a = artefact()
    b = Artefact.from_bytes(a.to_bytes())
    assert b.user_ids.tolist() == ["alice", "bob"]
    assert b.item_ids.tolist() == MOVIES
    assert np.array_equal(b.item_factors, a.item_factors)
    assert (b.seen != a.seen).nnz == 0
    assert b.genres == GENRES
    assert b.meta["trained_at"] == 1_700_000_000.0
    with pytest.raises(ValueError, match="Object arrays cannot be loaded"):
        # an artefact carrying pickled objects is refused, not executed
        import io

        buf = io.BytesIO()
        np.savez(buf, meta=np.array([object()], dtype=object))
        Artefact.from_bytes(buf.getvalue())


def _app(**overrides: object) -> TestClient:
    settings = RecommenderSettings.model_validate(
        {"postgres": NO_DB, "readiness_timeout_s": 0.5, "registry_timeout_s": 0.5, "auth": AUTH}
        | overrides
    )
    return TestClient(create_app(settings, poll=False, clock=lambda: NOW))


@pytest.fixture
def client() -> Iterator[TestClient]:
    """An internal client (the explorer's key)."""
    with _app() as c:
        c.headers["X-API-Key"] = "internal-key"
        yield c


def test_no_model_and_no_database_is_503_and_not_ready(client: TestClient) -> None:
    r = client.get("/api/recommendations", params={"user_id": "alice"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    # why (no model; the database's host and driver error) is logged, not answered
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"model": "down", "postgres": "down"},
    }
    for detail in ("no model", "127.0.0.1", "RuntimeError", "error"):
        assert detail not in ready.text, detail
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_follow_the_environment_and_the_setting(path: str) -> None:
    for environment, enabled, status in [
        ("production", None, 404),
        ("test", None, 404),
        ("development", None, 200),
        ("production", True, 200),
    ]:
        settings = RecommenderSettings(
            postgres=NO_DB,
            environment=environment,
            docs_enabled=enabled,
            readiness_timeout_s=0.5,
            registry_timeout_s=0.5,
        )
        with TestClient(create_app(settings, poll=False)) as c:
            assert c.get(path).status_code == status, (environment, enabled)


def test_http_answers_carry_strategy_and_version(client: TestClient) -> None:
    client.app.state.service.swap(Recommender.from_artefact("v1", artefact(), top_n=3))  # type: ignore[attr-defined]
    r = client.get("/api/recommendations", params={"user_id": "alice", "k": 2})
    assert r.status_code == 200
    body = r.json()
    # no database: alice's fresh history cannot be read, so the version's own answer, and
    # the answer says it may be stale
    assert body["strategy"] == "model_stale" and body["model_version"] == "v1"
    assert [i["movie_id"] for i in body["items"]] == [102, 103]
    cold = client.get("/api/recommendations", params={"user_id": "x", "genre": "Action"}).json()
    assert (cold["strategy"], [i["movie_id"] for i in cold["items"]]) == (
        "popular_in_genre",
        [104, 105],
    )
    similar = client.get("/api/movies/101/similar", params={"k": 1}).json()
    assert similar["items"][0]["movie_id"] == 102 and similar["model_version"] == "v1"
    missing = client.get("/api/movies/999/similar")
    assert missing.status_code == 404 and "unknown movie 999" in missing.json()["detail"]
    genre = client.get("/api/recommendations", params={"user_id": "alice", "genre": "Western"})
    assert genre.status_code == 404 and "Western" in genre.json()["detail"]
    # two more reads of alice: reads stop after a refused connection or three timeouts in a
    # row (the pool turns a refusal into a timeout on a busy machine), so by now at least
    # one is answered by the backoff without trying ("skipped")
    for _ in range(2):
        again = client.get("/api/recommendations", params={"user_id": "alice", "k": 2})
        assert again.json()["strategy"] == "model_stale"
    metrics = client.get("/metrics").text
    assert 'cinepulse_recommender_model_info{version="v1"} 1.0' in metrics
    assert 'strategy="popular_in_genre"' in metrics
    assert "cinepulse_recommender_model_age_seconds" in metrics
    assert 'cinepulse_recommender_history_reads_total{outcome="failed"}' in metrics
    assert 'cinepulse_recommender_history_reads_total{outcome="skipped"}' in metrics


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/recommendations", {"user_id": "a", "k": 0}, "k"),
        ("/api/recommendations", {"user_id": "a", "k": 101}, "k"),
        ("/api/recommendations", {"user_id": "a", "k": "ten"}, "k"),
        ("/api/recommendations", {}, "user_id"),
        ("/api/recommendations", {"user_id": "a", "exclude_seen": "maybe"}, "exclude_seen"),
        ("/api/movies/1/similar", {"k": 500}, "k"),
        ("/api/movies/0/similar", {}, "movie_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, object], field: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["field"] == field and detail["reason"] and detail["type"]


# --- access: the api's keys, roles and user tokens ------------------------------------------
def _token(user: str, ttl: int = 600) -> str:
    return sign_user_token(SECRET, user, ttl, now=NOW)


@pytest.fixture
def served() -> Iterator[TestClient]:
    """No key of its own; model v1 served."""
    with _app() as c:
        c.app.state.service.swap(Recommender.from_artefact("v1", artefact(), top_n=3))  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing X-API-Key header"),
        ({"X-API-Key": "nope"}, 401, "invalid X-API-Key (no client has this key)"),
        ({"X-API-Key": "frontend-key"}, 401, "client 'web' (role frontend) must send X-User-Token"),
        # a client without a listed role is a frontend: the least privileged
        ({"X-API-Key": "partner-key"}, 401, "client 'partner' (role frontend) must send"),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("bob")},
            403,
            "the X-User-Token is for another user; client 'web' (role frontend) may read only",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("alice", ttl=-1)},
            401,
            "invalid X-User-Token: expired",
        ),
        # a user token alone is not a credential
        ({"X-User-Token": _token("alice")}, 401, "missing X-API-Key header"),
    ],
    ids=[
        "no-key",
        "unknown-key",
        "frontend-no-token",
        "unlisted-client-is-frontend",
        "other-users-token",
        "expired-token",
        "token-without-key",
    ],
)
def test_recommendations_are_refused_before_the_model_is_read(
    served: TestClient, headers: dict[str, str], status: int, reason: str
) -> None:
    answers = [
        served.get(
            "/api/recommendations",
            params={"user_id": "alice", "k": 2, "exclude_seen": seen},
            headers=headers,
        )
        for seen in ("true", "false")
    ]
    r = answers[0]
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(reason), r.json()
    if status == 401:
        assert r.headers["www-authenticate"] in ("X-API-Key", "X-User-Token")
    # a refused call learns nothing: exclude_seen (what alice watched) changes no byte (the
    # rate limit's headers aside: they count the caller's requests, whatever they asked)
    same = [
        (a.status_code, a.content, sorted(h for h in a.headers.items() if "ratelimit" not in h[0]))
        for a in answers
    ]
    assert same[0] == same[1]
    assert "101" not in r.text and "items" not in r.text


def test_an_internal_client_reads_any_user(served: TestClient) -> None:
    key = {"X-API-Key": "internal-key"}
    for user, first in (("alice", 102), ("bob", 104), ("newcomer", 101)):
        r = served.get("/api/recommendations", params={"user_id": user, "k": 1}, headers=key)
        assert r.status_code == 200, r.text
        assert r.json()["items"][0]["movie_id"] == first
        assert r.headers["cache-control"] == "private, no-store"
        assert r.headers["vary"] == "X-API-Key, X-User-Token"


def test_a_frontend_reads_its_own_users_recommendations(served: TestClient) -> None:
    mine = {"X-API-Key": "frontend-key", "X-User-Token": _token("alice")}
    r = served.get("/api/recommendations", params={"user_id": "alice", "k": 2}, headers=mine)
    assert r.status_code == 200, r.text
    assert [i["movie_id"] for i in r.json()["items"]] == [102, 103]
    seen = served.get(
        "/api/recommendations",
        params={"user_id": "alice", "k": 2, "exclude_seen": "false"},
        headers=mine,
    )
    assert seen.status_code == 200 and seen.json()["items"][0]["movie_id"] == 101


def test_without_a_token_secret_a_frontend_reads_no_user() -> None:
    auth = {k: v for k, v in AUTH.items() if k != "user_token_secret"}
    with _app(auth=auth) as c:
        r = c.get(
            "/api/recommendations",
            params={"user_id": "alice"},
            headers={"X-API-Key": "frontend-key", "X-User-Token": _token("alice")},
        )
    assert r.status_code == 403
    assert "no user token secret is configured" in r.json()["detail"]


def test_similar_movies_health_and_metrics_stay_open(served: TestClient) -> None:
    assert served.get("/api/movies/101/similar", params={"k": 1}).status_code == 200
    assert served.get("/healthz").status_code == 200
    assert served.get("/metrics").status_code == 200
    with _app(auth=AUTH | {"public_aggregates": False}) as c:
        # the api's rule for aggregates: a key when they are not public
        r = c.get("/api/movies/101/similar")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "X-API-Key"
        assert c.get("/healthz").status_code == 200


def test_auth_disabled_opens_recommendations() -> None:
    with _app(auth={"enabled": False}) as c:
        # no credential needed: the request reaches the (missing) model
        assert c.get("/api/recommendations", params={"user_id": "alice"}).status_code == 503
        spec = c.app.openapi()
    assert "securitySchemes" not in spec.get("components", {})


def test_openapi_declares_the_security_schemes(served: TestClient) -> None:
    spec = served.app.openapi()  # type: ignore[attr-defined]
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["ApiKey"]["name"], schemes["UserToken"]["name"]) == (
        "X-API-Key",
        "X-User-Token",
    )
    recs = spec["paths"]["/api/recommendations"]["get"]
    assert recs["security"] == [{"ApiKey": [], "UserToken": []}, {"ApiKey": []}]
    assert {"401", "403"} <= set(recs["responses"])
    assert "security" not in spec["paths"]["/api/movies/{movie_id}/similar"]["get"]  # public


def test_auth_settings_are_the_apis(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"auth\.enabled=false is for development"):
        RecommenderSettings(postgres=NO_DB, environment="production", auth={"enabled": False})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        RecommenderSettings(postgres=NO_DB, auth={"user_token_secret": "short"})  # type: ignore[arg-type]
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@db/x")
    monkeypatch.setenv("CINEPULSE_AUTH__KEYS", '{"explorer": "k1"}')
    monkeypatch.setenv("CINEPULSE_AUTH__ROLES", '{"explorer": "internal", "web": "frontend"}')
    monkeypatch.setenv("CINEPULSE_AUTH__USER_TOKEN_SECRET", SECRET)
    s = RecommenderSettings()
    assert s.auth.enabled and s.auth.header == "X-API-Key"
    assert s.auth.roles == {"explorer": "internal", "web": "frontend"}
    assert s.auth.keys["explorer"].get_secret_value() == "k1"
    assert s.auth.user_token_secret is not None


def test_a_bad_key_source_stops_the_recommender_at_start(tmp_path: object) -> None:
    with pytest.raises(SystemExit, match="recommender: cannot load API keys"):
        _app(auth={"keys_path": f"{tmp_path}/missing"})
