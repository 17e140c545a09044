"""The rate limit per write key: 429 with Retry-After, the X-RateLimit-* headers, 413 for a
request above the whole limit, and no limit below a full batch."""

from __future__ import annotations

import time

import httpx
import pytest
from limits import parse

from tests.factories import event
from tests.unit.gateway.fakes import (
    FakePublisher,
    make_client,
    make_settings,
    post,
    post_batch,
    sample,
)


def _away_from_the_minute_edge() -> None:
    """The limiter's windows are aligned on whole minutes and the previous window's count
    decays across the edge: start with enough of the minute left for the test."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


def test_the_sixth_event_within_the_minute_is_429(publisher: FakePublisher) -> None:
    before = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "unknown", "reason": "rate_limited"},
    )
    _away_from_the_minute_edge()
    with make_client(publisher, rate_limit="5/minute", limits={"max_batch_events": 5}) as c:
        for _ in range(5):
            assert post(c, event()).status_code == 202
        r = post(c, event())
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "rate limit" in r.json()["detail"]
        # the limit is per write key
        assert post(c, event(), headers={"X-Write-Key": "k2"}).status_code == 202
    assert len(publisher.published) == 6
    after = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "unknown", "reason": "rate_limited"},
    )
    assert after == before + 1


def test_a_batch_counts_each_event_against_the_rate_limit(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with make_client(publisher, rate_limit="5/minute", limits={"max_batch_events": 5}) as c:
        assert post_batch(c, [event() for _ in range(3)]).status_code == 202
        r = post_batch(c, [event() for _ in range(3)])  # 6 > 5
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert post_batch(c, [event() for _ in range(2)]).status_code == 202  # exactly 5
    assert len(publisher.published) == 5


def test_a_request_above_the_whole_limit_is_413_not_429(publisher: FakePublisher) -> None:
    """Waiting would never let it through: 413 naming the setting, no Retry-After. The
    settings refuse such a limit; this is the gateway's own safety net."""
    _away_from_the_minute_edge()
    with make_client(publisher, limits={"max_batch_events": 10}) as c:
        gw = c.app.state.gateway  # type: ignore[attr-defined]
        gw._limits["web"] = parse("5/minute")
        before = sample(
            "cinepulse_gateway_events_rejected_total",
            {"event_type": "unknown", "reason": "exceeds_rate_limit"},
        )
        r = post_batch(c, [event() for _ in range(6)])
        assert r.status_code == 413, r.text
        assert "retry-after" not in r.headers
        assert r.json() == {
            "detail": "6 events in one request exceed rate_limit 5 per 1 minute for client "
            "'web': send at most 5 events per request"
        }
        assert _limit_headers(r)[:2] == (5, 5)  # nothing was counted
        assert post_batch(c, [event() for _ in range(5)]).status_code == 202
        after = sample(
            "cinepulse_gateway_events_rejected_total",
            {"event_type": "unknown", "reason": "exceeds_rate_limit"},
        )
        assert after == before + 6
    assert len(publisher.published) == 5


def test_an_invalid_rate_limit_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        make_settings(rate_limit="lots")
    for bad in ("", "0/second"):
        with pytest.raises(ValueError, match="rate_limit"):
            make_settings(rate_limit=bad)
    with pytest.raises(ValueError, match=r"rate_limits\['ios'\] 'lots'"):
        make_settings(rate_limits={"ios": "lots"})


def test_a_limit_below_the_batch_maximum_is_refused_at_start() -> None:
    """Such a key could never send a full batch (the old default, 100/second, with 500)."""
    with pytest.raises(
        ValueError,
        match=r"rate_limit '100/second' allows 100 events, fewer "
        r"than limits.max_batch_events \(500\)",
    ):
        make_settings(rate_limit="100/second")
    with pytest.raises(ValueError, match=r"rate_limits\['ios'\] '50/second' allows 50 events"):
        make_settings(rate_limits={"ios": "50/second"})
    with pytest.raises(ValueError, match=r"limits.max_batch_events \(20\)"):
        make_settings(rate_limit="19/second", limits={"max_batch_events": 20})
    # exactly a full batch, a lower batch maximum, or unlimited: accepted
    make_settings(rate_limit="500/minute", rate_limits={"ios": "unlimited"})
    make_settings(rate_limit="20/second", limits={"max_batch_events": 20})


def _limit_headers(r: httpx.Response) -> tuple[int, int, int]:
    h = r.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def test_a_write_key_is_limited_by_default_to_1000_events_per_10_seconds(
    publisher: FakePublisher,
) -> None:
    """100 events a second on average, and a full batch (500) fits in the window."""
    settings = make_settings()
    assert (settings.rate_limit, settings.rate_limits) == ("1000/10 seconds", {})
    assert settings.limits.max_batch_events == 500
    with make_client(publisher) as c:
        r = post(c, event())
        assert r.status_code == 202, r.text
        limit, remaining, reset = _limit_headers(r)
        assert (limit, remaining) == (1000, 999)
        assert 1 <= reset <= 10
        r = post_batch(c, [event() for _ in range(500)])
        assert r.status_code == 202, r.text
        assert _limit_headers(r)[:2] == (1000, 499)
        r = post_batch(c, [event() for _ in range(500)])  # 1001 > 1000
        assert r.status_code == 429, r.text
        assert r.json() == {"detail": "rate limit 1000 per 10 second exceeded for client 'web'"}
        assert 1 <= int(r.headers["retry-after"]) <= 10


def test_the_headers_count_down_to_429_then_reset(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with make_client(publisher, rate_limit="5/minute", limits={"max_batch_events": 5}) as c:
        seen = []
        for _ in range(3):
            r = post(c, event())
            assert r.status_code == 202, r.text
            seen.append(_limit_headers(r))
        r = post_batch(c, [event(), event()])
        assert r.status_code == 202, r.text
        seen.append(_limit_headers(r))
        assert [(lim, rem) for lim, rem, _ in seen] == [(5, 4), (5, 3), (5, 2), (5, 0)]
        assert all(1 <= reset <= 60 for _, _, reset in seen)
        r = post(c, event())
        assert r.status_code == 429, r.text
        # the body keeps its shape and names the limit and the client
        assert r.json() == {"detail": "rate limit 5 per 1 minute exceeded for client 'web'"}
        limit, remaining, reset = _limit_headers(r)
        assert (limit, remaining) == (5, 0)
        assert r.headers["retry-after"] == str(reset)
        # a 422 after the count carries them too
        r = post(c, {"event_type": "rate"}, headers={"X-Write-Key": "k2"})
        assert r.status_code == 422
        assert _limit_headers(r)[:2] == (5, 4)
    # a window long enough that the four posts fit in it on a busy machine (a 1-second
    # window let the first post age out before the fourth about once in ten runs)
    with make_client(publisher, rate_limit="3/2 seconds", limits={"max_batch_events": 3}) as c:
        assert [_limit_headers(post(c, event()))[1] for _ in range(3)] == [2, 1, 0]
        r = post(c, event())
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 2
        time.sleep(4.1)  # two whole windows: the sliding count has nothing left
        r = post(c, event())
        assert r.status_code == 202, r.text
        limit, remaining, reset = _limit_headers(r)
        assert (limit, remaining) == (3, 2) and 1 <= reset <= 2


def test_a_key_with_its_own_limit(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with make_client(
        publisher, rate_limits={"ios": "2/minute"}, limits={"max_batch_events": 2}
    ) as c:
        ios = {"X-Write-Key": "k2"}
        assert [post(c, event(), headers=ios).status_code for _ in range(3)] == [202, 202, 429]
        r = post(c, event(), headers=ios)
        assert "rate limit 2 per 1 minute exceeded for client 'ios'" in r.json()["detail"]
        # the other key keeps the default
        r = post(c, event())
        assert r.status_code == 202
        assert _limit_headers(r)[:2] == (1000, 999)


@pytest.mark.parametrize("spelling", ["unlimited", "none", "Unlimited"])
def test_an_unlimited_key_is_never_counted(publisher: FakePublisher, spelling: str) -> None:
    _away_from_the_minute_edge()
    with make_client(
        publisher,
        rate_limit="2/minute",
        rate_limits={"web": spelling},
        limits={"max_batch_events": 2},
    ) as c:
        for _ in range(5):
            r = post(c, event())
            assert r.status_code == 202, r.text
            assert not any(h.startswith("x-ratelimit") for h in r.headers)
        for _ in range(5):
            assert post_batch(c, [event(), event()]).status_code == 202
        ios = {"X-Write-Key": "k2"}
        assert [post(c, event(), headers=ios).status_code for _ in range(3)] == [202, 202, 429]
    assert len(publisher.acked) == 17


def test_the_rate_limit_headers_are_readable_by_a_browser(publisher: FakePublisher) -> None:
    origin = "https://cinepulse.example.com"
    with make_client(publisher, cors_origins=[origin]) as c:
        r = post(c, event(), headers={"Origin": origin})
        assert r.status_code == 202
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        } <= exposed
