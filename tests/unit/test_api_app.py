"""The api without a database: parameter validation (422 naming the field), liveness,
readiness failing when PostgreSQL does not answer (and 503 from a read), /api/trending when
the archiver is down, slow or odd (a mock transport), access rules that answer before any
query (401/403), user tokens, ETag matching, the OpenAPI document, window bounds and
settings; the answer caches over a stand-in warehouse that counts its queries (one query per
meaning of a request, bounded, trending kept briefly). The access rules with data behind them
are in tests/integration/test_api_access.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cinepulse_api.adapters.warehouse import window_bounds
from cinepulse_api.app import create_app
from cinepulse_api.cache import AnswerCache, Encoded, etag_matches, etag_of, fold_name
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import UserTokenError, sign_user_token, verify_user_token
from cinepulse_common.settings import PostgresSettings

# nothing listens on port 9: the pool never gets a connection
NO_DB = PostgresSettings(dsn="postgresql://u:p@127.0.0.1:9/none?connect_timeout=1")
SECRET = "s" * 32
AUTH = {
    "keys": {"explorer": "internal-key", "web": "frontend-key", "partner": "partner-key"},
    "roles": {"explorer": "internal", "web": "frontend"},
    "user_token_secret": SECRET,
}
NOW = 1_800_000_000.0


def _app(**overrides: object) -> TestClient:
    settings = ApiSettings.model_validate(
        {"postgres": NO_DB, "readiness_timeout_s": 0.5, "db_pool_timeout_s": 0.5, "auth": AUTH}
        | overrides
    )
    return TestClient(create_app(settings, clock=lambda: NOW))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _app() as c:
        c.headers["X-API-Key"] = "internal-key"
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
    # why (the driver's message: host, port, database) is logged, not answered
    assert r.json() == {"status": "unavailable", "checks": {"postgres": "down"}}
    for detail in ("127.0.0.1", "none", "error", "Timeout", "Error"):
        assert detail not in r.text, detail


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
    assert s.auth.enabled and s.auth.public_aggregates and s.auth.header == "X-API-Key"
    assert s.auth.user_token_secret is None and s.db_pool_timeout_s == 5.0
    assert (s.answer_cache_s, s.answer_cache_entries, s.trending_cache_s) == (10.0, 1024, 5.0)


# --- access: the answers that come before any query ----------------------------------------
def _token(user: str, ttl: int = 600, secret: str = SECRET) -> str:
    return sign_user_token(secret, user, ttl, now=NOW)


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing X-API-Key header"),
        ({"X-API-Key": "nope"}, 401, "invalid X-API-Key (no client has this key)"),
        ({"X-API-Key": "frontend-key"}, 401, "client 'web' (role frontend) must send X-User-Token"),
        # a client without a listed role is a frontend: the least privileged
        ({"X-API-Key": "partner-key"}, 401, "client 'partner' (role frontend) must send"),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("someone-else")},
            403,
            "the X-User-Token is for another user; client 'web' (role frontend) may read only",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", ttl=-1)},
            401,
            "invalid X-User-Token: expired",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", secret="x" * 32)},
            401,
            "invalid X-User-Token: bad signature",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": _token("critic", ttl=86_400)},
            401,
            "invalid X-User-Token: expires more than 3600s ahead",
        ),
        (
            {"X-API-Key": "frontend-key", "X-User-Token": "garbage"},
            401,
            "invalid X-User-Token: malformed token",
        ),
        # a user token alone is not a credential
        ({"X-User-Token": _token("critic")}, 401, "missing X-API-Key header"),
    ],
    ids=[
        "no-key",
        "bad-key",
        "frontend-no-token",
        "unlisted-client-is-frontend",
        "other-users-token",
        "expired",
        "forged",
        "too-long-lived",
        "malformed",
        "token-without-key",
    ],
)
def test_per_user_data_is_refused_before_any_query(
    headers: dict[str, str], status: int, reason: str
) -> None:
    with _app() as c:
        r = c.get("/api/user_stats/critic", headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(reason), r.json()
    if status == 401:
        assert r.headers["www-authenticate"] in ("X-API-Key", "X-User-Token")
    assert "etag" not in r.headers


def test_a_frontend_reads_no_user_without_a_token_secret() -> None:
    auth = {k: v for k, v in AUTH.items() if k != "user_token_secret"}
    with _app(auth=auth) as c:
        r = c.get(
            "/api/user_stats/critic",
            headers={"X-API-Key": "frontend-key", "X-User-Token": _token("critic")},
        )
    assert r.status_code == 403
    assert "no user token secret is configured" in r.json()["detail"]


def test_aggregates_need_a_key_when_not_public() -> None:
    with _app(auth=AUTH | {"public_aggregates": False}) as c:
        for path in ("/api/top_movies", "/api/movies/1", "/api/emotion_trends", "/api/trending"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json() == {"detail": "missing X-API-Key header"}
            assert c.get(path, headers={"X-API-Key": "bad"}).status_code == 401
        # health and metrics stay open
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_a_database_that_does_not_answer_is_503_with_retry_after(client: TestClient) -> None:
    r = client.get("/api/movies/1")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {"detail": "the database is unavailable (PoolTimeout); retry later"}


def test_user_tokens_round_trip_and_refuse_tampering() -> None:
    token = sign_user_token(SECRET, "u-1042", 300, now=NOW)
    assert verify_user_token(SECRET, token, 3600, now=NOW) == "u-1042"
    header, claims, sig = token.split(".")
    # a standard JWT: any HS256 library reads it
    import base64
    import json

    def part(p: str) -> dict[str, object]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

    assert part(header) == {"alg": "HS256", "typ": "JWT"}
    assert part(claims) == {"sub": "u-1042", "exp": int(NOW) + 300, "aud": "cinepulse-api"}

    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    forged = f"{header}.{b64({'sub': 'admin', 'exp': NOW + 300, 'aud': 'cinepulse-api'})}.{sig}"
    none_alg = f"{b64({'alg': 'none'})}.{claims}."
    for bad, reason in [
        (forged, "bad signature"),
        (none_alg, "unsupported algorithm"),
        (token + "x", "bad signature"),
        ("a.b", "malformed"),
        ("é.é.é", "malformed"),
    ]:
        with pytest.raises(UserTokenError, match=reason):
            verify_user_token(SECRET, bad, 3600, now=NOW)
    with pytest.raises(UserTokenError, match="expired"):
        verify_user_token(SECRET, token, 3600, now=NOW + 300)
    with pytest.raises(UserTokenError, match="bad signature"):
        verify_user_token("t" * 32, token, 3600, now=NOW)


def test_a_correctly_signed_token_with_wrong_claims_is_refused() -> None:
    import base64
    import hashlib
    import hmac
    import json

    def signed(header: dict[str, object], claims: object) -> str:
        def b64(d: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

        signing_input = f"{b64(header)}.{b64(claims)}"
        sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"

    hs256 = {"alg": "HS256", "typ": "JWT"}
    good = {"sub": "u", "exp": NOW + 60, "aud": "cinepulse-api"}
    assert verify_user_token(SECRET, signed(hs256, good), 3600, now=NOW) == "u"
    assert (
        verify_user_token(
            SECRET, signed(hs256, good | {"aud": ["x", "cinepulse-api"]}), 60, now=NOW
        )
        == "u"
    )
    for header, claims, reason in [
        ({"alg": "HS512"}, good, "unsupported algorithm"),
        (hs256, ["u"], "malformed"),
        (hs256, good | {"sub": ""}, "no sub"),
        (hs256, good | {"aud": "other"}, "aud must be"),
        (hs256, {"sub": "u", "aud": "cinepulse-api"}, "no exp"),
        (hs256, good | {"exp": True}, "no exp"),
    ]:
        with pytest.raises(UserTokenError, match=reason):
            verify_user_token(SECRET, signed(header, claims), 3600, now=NOW)


def test_auth_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ApiSettings(postgres=NO_DB, auth={"user_token_secret": "short"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"auth\.enabled=false is for development"):
        ApiSettings(postgres=NO_DB, environment="production", auth={"enabled": False})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="roles"):
        ApiSettings(postgres=NO_DB, auth={"roles": {"x": "admin"}})  # type: ignore[arg-type]
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:p@db/x")
    monkeypatch.setenv("CINEPULSE_AUTH__KEYS", '{"explorer": "k1"}')
    monkeypatch.setenv("CINEPULSE_AUTH__ROLES", '{"explorer": "internal"}')
    monkeypatch.setenv("CINEPULSE_AUTH__PUBLIC_AGGREGATES", "false")
    s = ApiSettings()
    assert s.auth.roles == {"explorer": "internal"} and not s.auth.public_aggregates
    assert s.auth.keys["explorer"].get_secret_value() == "k1"


def test_a_bad_key_source_stops_the_api_at_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot load API keys"):
        create_app(ApiSettings(postgres=NO_DB, auth={"keys_path": tmp_path / "missing"}))  # type: ignore[arg-type]


def test_auth_disabled_opens_per_user_data() -> None:
    with _app(auth={"enabled": False}) as c:
        # no credential needed: the request reaches the (missing) database
        assert c.get("/api/user_stats/critic").status_code == 503
        spec = c.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    assert "401" not in spec["paths"]["/api/user_stats/{user_id}"]["get"]["responses"]


# --- ETag ------------------------------------------------------------------------------------
def test_etag_is_strong_and_if_none_match_compares_weakly() -> None:
    tag = etag_of(b'{"a":1}')
    assert tag.startswith('"') and tag.endswith('"') and tag == etag_of(b'{"a":1}')
    assert tag != etag_of(b'{"a":2}')
    assert etag_matches(tag, tag)
    assert etag_matches(f'"other", W/{tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches(None, tag)
    assert not etag_matches('"other"', tag)
    assert not etag_matches(tag[1:-1], tag)  # unquoted is not the same tag


# --- OpenAPI ---------------------------------------------------------------------------------
def test_openapi_documents_every_answer_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("TopMovies", "Movie", "UserStats", "EmotionTrends", "Trending"):
        assert schemas[name]["examples"], name
    assert schemas["ErrorMessage"]["examples"] and schemas["ValidationErrors"]["examples"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is not what we answer
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        answers = item["get"]["responses"]
        assert {"200", "304", "422", "503"} <= set(answers), path
        assert answers["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationErrors"
        }
        assert set(answers["200"]["headers"]) == {"ETag", "Cache-Control"}
    user = spec["paths"]["/api/user_stats/{user_id}"]["get"]
    assert {"401", "403", "404"} <= set(user["responses"])
    assert user["security"] == [{"ApiKey": [], "UserToken": []}, {"ApiKey": []}]
    assert "security" not in spec["paths"]["/api/top_movies"]["get"]  # public
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert spec["components"]["securitySchemes"]["UserToken"]["name"] == "X-User-Token"


DOCS = ["/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_are_off_outside_development(path: str) -> None:
    for environment in ("production", "test"):
        with _app(environment=environment) as c:
            assert c.get(path).status_code == 404, environment
            # the document is still built in process (for tools), only not served
            assert "/api/top_movies" in c.app.openapi()["paths"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", DOCS)
def test_docs_are_served_in_development_or_when_enabled(path: str) -> None:
    for overrides in (
        {"environment": "development"},
        {"environment": "production", "docs_enabled": True},
    ):
        with _app(**overrides) as c:
            assert c.get(path).status_code == 200, overrides
    with _app(environment="development", docs_enabled=False) as c:
        assert c.get(path).status_code == 404


def test_openapi_with_keyed_aggregates() -> None:
    with _app(auth=AUTH | {"public_aggregates": False}) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/api/top_movies"]["get"]
    assert op["security"] == [{"ApiKey": []}]
    assert "401" in op["responses"]


def test_the_answer_cache_expires_and_keeps_the_most_recent() -> None:
    now = [0.0]
    cache = AnswerCache(ttl_s=10, entries=2, clock=lambda: now[0])
    a, b, c = (Encoded(x, etag_of(x)) for x in (b"a", b"b", b"c"))
    cache.put(("a",), a)
    cache.put(("b",), b)
    assert cache.get(("a",)) is a  # now the most recently used
    cache.put(("c",), c)  # evicts b, the least recently used
    assert cache.get(("b",)) is None and cache.get(("a",)) is a and cache.get(("c",)) is c
    now[0] = 10.0
    assert cache.get(("a",)) is None  # expired
    off = AnswerCache(ttl_s=0, entries=2, clock=lambda: now[0])
    assert off.put(("a",), a) is a and off.get(("a",)) is None


def test_concurrent_misses_share_one_computation() -> None:
    import asyncio

    cache = AnswerCache(ttl_s=10, entries=8, clock=lambda: 0.0)
    calls = []

    async def compute() -> Encoded:
        calls.append(1)
        await asyncio.sleep(0.01)
        return Encoded(b"x", etag_of(b"x"))

    async def failing() -> Encoded:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    async def main() -> None:
        got = await asyncio.gather(*(cache.get_or_compute(("k",), compute) for _ in range(10)))
        assert len(calls) == 1 and {g.body for g in got} == {b"x"}
        results = await asyncio.gather(
            *(cache.get_or_compute(("f",), failing) for _ in range(3)), return_exceptions=True
        )
        assert len(calls) == 2 and all(isinstance(r, RuntimeError) for r in results)
        assert cache.get(("f",)) is None  # a failure is not kept

    asyncio.run(main())


# --- the answer caches: one query per meaning, bounded, trending kept briefly ---------------
MOVIE_ROW: dict[str, Any] = {
    "movie_id": 603,
    "imdb_id": "tt0133093",
    "title": "The Matrix",
    "original_title": None,
    "original_language": "en",
    "overview": None,
    "tagline": None,
    "status": "Released",
    "release_date": date(1999, 3, 30),
    "runtime_minutes": 136,
    "budget": None,
    "revenue": None,
    "popularity": None,
    "vote_average": None,
    "vote_count": None,
    "poster_path": None,
    "adult": False,
    "updated_at": "2026-11-20T08:00:00Z",
}
TOTALS_ROW = {
    "ratings": 20,
    "mean_rating": 4.5,
    "watches": 4,
    "completed_watches": 3,
    "watch_seconds": 21600.0,
    "comments": 2,
    "clicks": 9,
}
#: canned rows per query name (the genre "drama" exists, in any case, like lower() = lower())
ROWS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "genre_ids": lambda p: [{"genre_id": 18}] if p["genre"].lower() == "drama" else [],
    "top_movies": lambda p: [
        {
            "total": 1,
            "c": 4.0,
            "movie_id": 603,
            "title": "The Matrix",
            "release_date": None,
            "ratings": 20,
            "mean_rating": 4.5,
            "score": 4.3,
        }
    ],
    "movie": lambda p: [MOVIE_ROW] if p["movie_id"] == 603 else [],
    "movie_genres": lambda p: [{"genre_id": 18, "name": "Drama"}],
    "movie_totals": lambda p: [TOTALS_ROW],
    "emotion_trends": lambda p: [],
    "movie_titles": lambda p: [{"movie_id": i, "title": f"Movie {i}"} for i in p["ids"]],
}


class Warehouse:
    """Stands in for PostgreSQL under an app: canned rows, each query counted by name."""

    def __init__(self) -> None:
        self.queries: Counter[str] = Counter()
        self.connections = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        self.connections += 1
        yield None

    async def fetch(self, query: Any, params: dict[str, Any], conn: Any = None) -> Any:
        self.queries[query.name] += 1
        return ROWS[query.name](params)


class Archiver:
    """Stands in for the archiver's /counters/trending; each request's ``limit`` recorded."""

    def __init__(self) -> None:
        self.limits: list[str] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.limits.append(request.url.params["limit"])
        if self.down:
            raise httpx.ConnectError("refused")
        movies = [{"movie_id": 603, "events": 9}, {"movie_id": 99, "events": 4}]
        return httpx.Response(200, json={"minutes": 15, "movies": movies, "partitions": [0]})


@contextmanager
def _cached(**overrides: object) -> Iterator[tuple[TestClient, Warehouse, Archiver, list[float]]]:
    """An app over the stand-ins, its caches on a clock the test moves (``now[0]``)."""
    settings = ApiSettings.model_validate({"postgres": NO_DB, "auth": AUTH} | overrides)
    now = [0.0]
    archiver = Archiver()
    app = create_app(
        settings,
        today=lambda: date(2026, 3, 2),
        archiver_transport=httpx.MockTransport(archiver),
        cache_clock=lambda: now[0],
    )
    warehouse = Warehouse()
    app.state.warehouse.fetch = warehouse.fetch
    app.state.warehouse.connection = warehouse.connection
    with TestClient(app) as client:
        yield client, warehouse, archiver, now


def test_equivalent_spellings_of_a_request_share_one_query() -> None:
    spellings = [
        "/api/top_movies",
        "/api/top_movies?offset=0",  # a default given
        "/api/top_movies?min_votes=1&window=week",
        "/api/top_movies?window=week&genre_missing=&limit=20&offset=0&min_votes=1",
        "/api/top_movies?min_votes=1&offset=0&limit=20&window=week",  # another order
        "/api/top_movies?offset=00&limit=020",  # another spelling of the numbers
        "/api/top_movies?utm_source=x&offset=0&page=7",  # not parameters of the endpoint
    ]
    with _cached() as (client, db, _, _now):
        answers = [client.get(url) for url in spellings]
        assert [r.status_code for r in answers] == [200] * len(spellings)
        assert len({r.content for r in answers}) == 1
        assert db.queries == {"top_movies": 1}
        # a different meaning is a different answer
        assert client.get("/api/top_movies", params={"offset": 1}).json()["offset"] == 1
        assert client.get("/api/movies/603").status_code == 200
        assert client.get("/api/movies/0603?x=1").status_code == 200
        assert db.queries == {"top_movies": 2, "movie": 1, "movie_genres": 1, "movie_totals": 1}


def test_a_genre_in_any_ascii_case_shares_one_query_and_echoes_its_spelling() -> None:
    with _cached() as (client, db, _, _now):
        etags, rest = set(), []
        for spelling in ("Drama", "drama", "DRAMA", "dRaMa"):
            r = client.get("/api/top_movies", params={"genre": spelling, "window": "week"})
            assert r.status_code == 200 and r.json()["genre"] == spelling
            etags.add(r.headers["etag"])
            rest.append(r.json() | {"genre": None})
            trends = client.get("/api/emotion_trends", params={"genre": spelling})
            assert trends.status_code == 200 and trends.json()["genre"] == spelling
        assert len(etags) == 4  # each body echoes its own spelling...
        assert rest[0]["items"] and all(r == rest[0] for r in rest)  # ...and is otherwise one
        assert db.queries == {"genre_ids": 2, "top_movies": 1, "emotion_trends": 1}
        assert client.get("/api/top_movies", params={"genre": "Western"}).status_code == 404
        assert client.get("/api/top_movies", params={"genre": "western"}).status_code == 404
        assert db.queries["genre_ids"] == 4  # a 404 is never kept
    # only ASCII letters fold (every collation's lower() folds them alike)
    assert fold_name("Science FICTION") == "science fiction"
    assert fold_name("ÉPICA") == "Épica" and fold_name(None) is None


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
    with _cached() as (client, db, archiver, _now):
        r = client.get(url)
        assert r.status_code == 422, r.text
        assert db.queries == {} and db.connections == 0 and archiver.limits == []
        app: Any = client.app
        assert len(app.state.answer_cache) == 0 and len(app.state.trending_cache) == 0


def test_the_answer_cache_never_holds_more_than_its_entries() -> None:
    with _cached(answer_cache_entries=3) as (client, db, _, now):
        app: Any = client.app
        for offset in range(10):
            assert client.get("/api/top_movies", params={"offset": offset}).status_code == 200
            assert len(app.state.answer_cache) <= 3
        assert db.queries["top_movies"] == 10
        client.get("/api/top_movies", params={"offset": 9})  # among the 3 most recent: kept
        assert db.queries["top_movies"] == 10
        client.get("/api/top_movies", params={"offset": 0})  # the least recent: dropped
        assert db.queries["top_movies"] == 11
        # kept CINEPULSE_ANSWER_CACHE_S (10 s), then asked again
        now[0] = 9.9
        client.get("/api/top_movies", params={"offset": 0})
        assert db.queries["top_movies"] == 11
        now[0] = 10.0
        client.get("/api/top_movies", params={"offset": 0})
        assert db.queries["top_movies"] == 12


def test_trending_is_kept_for_its_ttl_then_asked_again() -> None:
    with _cached() as (client, db, archiver, now):
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
    with _cached(trending_cache_s=0) as (client, _db, archiver, _now):
        for _ in range(3):
            assert client.get("/api/trending", params={"limit": 3}).status_code == 200
        assert archiver.limits == ["3", "3", "3"]
