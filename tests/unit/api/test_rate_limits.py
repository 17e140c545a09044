"""The api's rate limits (cinepulse_common.read_limits): every /api/ request counts against
its caller's limit, a key's client's or, without a key, its address's, before the answer
cache; X-RateLimit-* headers on counted answers, 429 with Retry-After when exhausted; an
unknown key counts as no key (by address), so it spends no client's budget and a public
aggregate still answers it; health and metrics are never counted."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.unit.api.fakes import cached_app

TOP = "/api/top_movies"
INTERNAL = {"X-API-Key": "internal-key"}
PARTNER = {"X-API-Key": "partner-key"}


def _limit_headers(r: object) -> tuple[int, int, int]:
    headers = r.headers  # type: ignore[attr-defined]
    return (
        int(headers["x-ratelimit-limit"]),
        int(headers["x-ratelimit-remaining"]),
        int(headers["x-ratelimit-reset"]),
    )


def test_every_answer_carries_the_callers_limit_by_default() -> None:
    with cached_app() as (c, _, _, _):
        limit, remaining, reset = _limit_headers(c.get(TOP, headers=INTERNAL))
        assert (limit, remaining) == (1200, 1199) and 1 <= reset <= 60
        # the operation's own Response (a 304 too) gets them: the count goes on
        etag = c.get(TOP, headers=INTERNAL).headers["etag"]
        r = c.get(TOP, headers={**INTERNAL, "If-None-Match": etag})
        assert r.status_code == 304 and _limit_headers(r)[:2] == (1200, 1197)
        # without a key: the address's limit
        assert _limit_headers(c.get(TOP))[:2] == (300, 299)


def test_the_limit_is_on_requests_a_cached_answer_counts_too() -> None:
    with cached_app(rate_limit={"per_client": "3/hour"}) as (c, warehouse, _, _):
        for left in (2, 1, 0):
            r = c.get(TOP, headers=INTERNAL)
            assert r.status_code == 200 and _limit_headers(r)[1] == left
        assert warehouse.queries["top_movies"] == 1  # the answer cache served the others
        r = c.get(TOP, params={"offset": 1}, headers=INTERNAL)  # a new query: refused first
        assert r.status_code == 429, r.text
        assert r.json() == {"detail": "rate limit 3 per 1 hour exceeded for client 'explorer'"}
        assert 1 <= int(r.headers["retry-after"]) <= 3600
        assert r.headers["retry-after"] == r.headers["x-ratelimit-reset"]
        assert _limit_headers(r)[:2] == (3, 0)
        assert warehouse.queries["top_movies"] == 1
        # every /api/ operation shares the caller's budget
        assert c.get("/api/movies/603", headers=INTERNAL).status_code == 429
        assert c.get("/api/user_stats/alice", headers=INTERNAL).status_code == 429
        # another client has a budget of its own
        assert _limit_headers(c.get(TOP, headers=PARTNER))[:2] == (3, 2)


def test_a_client_of_its_own_limit_and_an_unlimited_one() -> None:
    limits = {"per_client": "5/hour", "clients": {"partner": "1/hour", "explorer": "unlimited"}}
    with cached_app(rate_limit=limits) as (c, _, _, _):
        assert c.get(TOP, headers=PARTNER).status_code == 200
        r = c.get(TOP, headers=PARTNER)
        assert r.status_code == 429
        assert r.json()["detail"] == "rate limit 1 per 1 hour exceeded for client 'partner'"
        for _ in range(10):
            r = c.get(TOP, headers=INTERNAL)
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        web = c.get(TOP, headers={"X-API-Key": "frontend-key"})
        assert _limit_headers(web)[:2] == (5, 4)


def test_callers_without_a_key_are_counted_by_address() -> None:
    with cached_app(rate_limit={"anonymous": "2/hour"}) as (c, _, _, _):
        assert [c.get(TOP).status_code for _ in range(3)] == [200, 200, 429]
        r = c.get(TOP)
        assert r.json()["detail"] == (
            "rate limit 2 per 1 hour exceeded for address testclient "
            "(callers without an API key are counted by address)"
        )
        # another address, or a key, is another budget
        other = TestClient(c.app, client=("10.0.0.7", 40000))
        assert _limit_headers(other.get(TOP))[:2] == (2, 1)
        assert c.get(TOP, headers=INTERNAL).status_code == 200


def test_an_unknown_key_counts_as_no_key_and_spends_no_clients_budget() -> None:
    with cached_app(rate_limit={"anonymous": "2/hour", "per_client": "1/hour"}) as (c, _, _, _):
        stale = {"X-API-Key": "nope"}
        # a public aggregate answers a stale key as it answers no key: counted by address
        r = c.get(TOP, headers=stale)
        assert r.status_code == 200 and _limit_headers(r)[:2] == (2, 1)
        # where a key is needed, the operation refuses it, after the address's count
        r = c.get("/api/user_stats/alice", headers=stale)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "X-API-Key"
        assert _limit_headers(r)[:2] == (2, 0)
        assert c.get(TOP).status_code == 429  # the address's budget is spent
        r = c.get(TOP, headers=INTERNAL)  # no client's is
        assert r.status_code == 200 and _limit_headers(r)[:2] == (1, 0)


def test_health_and_metrics_are_never_counted() -> None:
    with cached_app(rate_limit={"anonymous": "1/hour"}) as (c, _, _, _):
        for _ in range(3):
            for path in ("/healthz", "/metrics"):
                r = c.get(path)
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        assert c.get(TOP).status_code == 200


def test_disabled_counts_nothing_and_documents_no_429() -> None:
    with cached_app(rate_limit={"enabled": False, "per_client": "1/hour"}) as (c, _, _, _):
        for _ in range(5):
            r = c.get(TOP, headers=INTERNAL)
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        answers = c.app.openapi()["paths"][TOP]["get"]["responses"]  # type: ignore[attr-defined]
        assert "429" not in answers
    with cached_app() as (c, _, _, _):
        answers = c.app.openapi()["paths"][TOP]["get"]["responses"]  # type: ignore[attr-defined]
        assert answers["429"]["content"]["application/json"]["example"] == {
            "detail": "rate limit 1200 per 1 minute exceeded for client 'web'"
        }
