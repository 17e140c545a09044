"""The recommender's rate limits: the api's rules (cinepulse_common.read_limits) on both
operations: per key's client or, without a key, per address; X-RateLimit-* headers, 429
with Retry-After, an unknown key counted as no key (by address), health never counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from cinepulse_recommender.app import create_app
from cinepulse_recommender.recommend import Recommender
from cinepulse_recommender.settings import RecommenderSettings
from tests.unit.test_recommender_serving import AUTH, NO_DB, NOW, artefact

SIMILAR = "/api/movies/101/similar"
RECOMMENDATIONS = "/api/recommendations"
INTERNAL = {"X-API-Key": "internal-key"}


@contextmanager
def _served(**rate_limit: object) -> Iterator[TestClient]:
    """Model v1 served; ``rate_limit`` the settings block (defaults when empty)."""
    settings = RecommenderSettings.model_validate(
        {"postgres": NO_DB, "registry_timeout_s": 0.5, "auth": AUTH}
        | ({"rate_limit": rate_limit} if rate_limit else {})
    )
    with TestClient(create_app(settings, poll=False, clock=lambda: NOW)) as c:
        c.app.state.service.swap(Recommender.from_artefact("v1", artefact(), top_n=3))  # type: ignore[attr-defined]
        yield c


def _counted(r: object) -> tuple[int, int]:
    headers = r.headers  # type: ignore[attr-defined]
    return int(headers["x-ratelimit-limit"]), int(headers["x-ratelimit-remaining"])


def test_both_operations_carry_the_limit_by_default() -> None:
    with _served() as c:
        r = c.get(RECOMMENDATIONS, params={"user_id": "alice"}, headers=INTERNAL)
        assert r.status_code == 200 and _counted(r) == (1200, 1199)
        assert _counted(c.get(SIMILAR, headers=INTERNAL)) == (1200, 1198)
        assert _counted(c.get(SIMILAR)) == (300, 299)  # public aggregate, by address
        spec = c.app.openapi()["paths"]  # type: ignore[attr-defined]
        for path in (RECOMMENDATIONS, "/api/movies/{movie_id}/similar"):
            assert "Retry-After" in spec[path]["get"]["responses"]["429"]["headers"], path


def test_a_client_past_its_limit_is_429_and_others_are_not() -> None:
    with _served(per_client="2/hour", clients={"partner": "unlimited"}) as c:
        assert c.get(SIMILAR, headers=INTERNAL).status_code == 200
        params = {"user_id": "alice"}
        assert c.get(RECOMMENDATIONS, params=params, headers=INTERNAL).status_code == 200
        r = c.get(RECOMMENDATIONS, params=params, headers=INTERNAL)
        assert r.status_code == 429, r.text
        assert r.json() == {"detail": "rate limit 2 per 1 hour exceeded for client 'explorer'"}
        assert 1 <= int(r.headers["retry-after"]) <= 3600 and _counted(r) == (2, 0)
        assert c.get(SIMILAR, headers={"X-API-Key": "frontend-key"}).status_code == 200
        partner = c.get(SIMILAR, headers={"X-API-Key": "partner-key"})
        assert partner.status_code == 200 and "x-ratelimit-limit" not in partner.headers


def test_anonymous_callers_and_unknown_keys_are_counted_by_address() -> None:
    with _served(anonymous="1/hour") as c:
        # an unknown key counts as no key: by address, and the public answer is given
        r = c.get(SIMILAR, headers={"X-API-Key": "nope"})
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "0"
        r = c.get(SIMILAR)
        assert r.status_code == 429 and "for address testclient" in r.json()["detail"]
        # a per-user request without a key is counted by address too, then refused the same
        assert c.get(RECOMMENDATIONS, params={"user_id": "alice"}).status_code == 429
        assert c.get("/healthz").status_code == 200
        other = TestClient(c.app, client=("10.1.2.3", 5000))
        assert other.get(SIMILAR).status_code == 200


def test_disabled_counts_nothing() -> None:
    with _served(enabled=False, per_client="1/hour") as c:
        for _ in range(3):
            r = c.get(SIMILAR, headers=INTERNAL)
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        spec = c.app.openapi()["paths"]  # type: ignore[attr-defined]
        assert "429" not in spec[RECOMMENDATIONS]["get"]["responses"]
