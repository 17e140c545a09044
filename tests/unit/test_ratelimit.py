"""The shared rate limit mechanics (cinepulse_common.ratelimit), shared by the gateway, the
api and the recommender: parsing a limit setting, counting against several limits at once,
the X-RateLimit-* headers, the 429, and the middleware answering the headers on an
operation's own Response; the read services' settings (cinepulse_common.read_limits)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from limits import parse

from cinepulse_common.ratelimit import (
    STATE_KEY,
    CountedLimit,
    RateLimiter,
    RateLimitExceeded,
    RateLimitHeadersMiddleware,
    parse_rate_limit,
)
from cinepulse_common.read_limits import (
    DEFAULT_ANONYMOUS,
    DEFAULT_PER_CLIENT,
    ReadRateLimitSettings,
)


def _limit(value: str, *who: str) -> CountedLimit:
    return CountedLimit(parse(value), who, "rate_limit", f"for client {who[0]!r}")


def test_a_limit_setting_parses_or_is_refused_naming_the_setting() -> None:
    item = parse_rate_limit("1200/minute", "rate_limit.per_client")
    assert item is not None and (item.amount, str(item)) == (1200, "1200 per 1 minute")
    for off in ("unlimited", "NONE", " Unlimited "):
        assert parse_rate_limit(off, "x") is None
    with pytest.raises(ValueError, match=r"^rate_limit.anonymous 'lots': .*'unlimited'\)$"):
        parse_rate_limit("lots", "rate_limit.anonymous")
    with pytest.raises(ValueError, match="a limit of 0 refuses every request"):
        parse_rate_limit("0/minute", "rate_limit.per_client")
    with pytest.raises(ValueError, match="a limit of 0 refuses every event"):
        parse_rate_limit("0/second", "rate_limit", unit="event")
    with pytest.raises(ValueError, match=r"^rate_limit '': "):  # empty is not "off"
        parse_rate_limit("", "rate_limit")


def test_count_answers_the_headers_then_429_with_retry_after() -> None:
    limiter = RateLimiter()
    web = _limit("3/hour", "web")
    seen = [limiter.count([web]) for _ in range(3)]
    assert [h["X-RateLimit-Remaining"] for h in seen] == ["2", "1", "0"]
    assert {h["X-RateLimit-Limit"] for h in seen} == {"3"}
    assert all(1 <= int(h["X-RateLimit-Reset"]) <= 3600 for h in seen)
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.count([web])
    exc = refused.value
    assert exc.status_code == 429
    assert exc.detail == "rate limit 3 per 1 hour exceeded for client 'web'"
    assert exc.headers is not None
    assert exc.headers["Retry-After"] == exc.headers["X-RateLimit-Reset"]
    assert exc.headers["X-RateLimit-Remaining"] == "0"
    # another identifier has a window of its own
    assert limiter.count([_limit("3/hour", "ios")])["X-RateLimit-Remaining"] == "2"


def test_a_request_one_limit_refuses_spends_nothing_of_the_other() -> None:
    limiter = RateLimiter()
    user = CountedLimit(parse("1/hour"), ("web", "alice"), "user_rate_limit", "for alice")
    client = _limit("10/hour", "web")
    # the headers are those of the limit with the least left
    assert limiter.count([user, client])["X-RateLimit-Limit"] == "1"
    with pytest.raises(RateLimitExceeded, match=r"exceeded for alice$"):
        limiter.count([user, client])
    assert limiter.get_window_stats(client.item, *client.who).remaining == 9
    assert limiter.count([]) == {}  # nothing to count, nothing to say


def _app_with_headers(counted: dict[str, str]) -> FastAPI:
    app = FastAPI()

    @app.get("/own")
    async def own(request: Request) -> Response:
        setattr(request.state, STATE_KEY, counted)
        return Response("{}", media_type="application/json", headers={"X-RateLimit-Limit": "9"})

    @app.get("/plain")
    async def plain() -> dict[str, int]:
        return {}

    app.add_middleware(RateLimitHeadersMiddleware)
    return app


def test_the_middleware_adds_the_counted_headers_to_an_operations_own_response() -> None:
    counted = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "7"}
    with TestClient(_app_with_headers(counted)) as c:
        r = c.get("/own")
        assert r.headers["x-ratelimit-remaining"] == "4"
        assert r.headers["x-ratelimit-reset"] == "7"
        # a header the answer has already is its own (a 429's): not doubled nor replaced
        assert r.headers.get_list("x-ratelimit-limit") == ["9"]
        assert "x-ratelimit-limit" not in c.get("/plain").headers  # nothing counted


def test_the_read_services_settings_are_on_by_default_and_validated() -> None:
    s = ReadRateLimitSettings()
    assert (s.enabled, s.per_client, s.anonymous, s.clients) == (
        True,
        DEFAULT_PER_CLIENT,
        DEFAULT_ANONYMOUS,
        {},
    )
    assert (DEFAULT_PER_CLIENT, DEFAULT_ANONYMOUS) == ("1200/minute", "300/minute")
    assert s.active
    with pytest.raises(ValueError, match=r"rate_limit.clients\['ios'\] 'lots'"):
        ReadRateLimitSettings(clients={"ios": "lots"})
    with pytest.raises(ValueError, match=r"rate_limit\.per_client '0/minute'"):
        ReadRateLimitSettings(per_client="0/minute")
    with pytest.raises(ValueError, match=r"rate_limit\.anonymous ''"):
        ReadRateLimitSettings(anonymous="")
    assert not ReadRateLimitSettings(enabled=False).active
    assert not ReadRateLimitSettings(per_client="unlimited", anonymous="none").active
    assert ReadRateLimitSettings(
        per_client="unlimited", anonymous="none", clients={"ios": "5/second"}
    ).active
