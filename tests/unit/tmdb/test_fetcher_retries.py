"""tmdb-fetcher's TMDB client without a network: retries, Retry-After, and the rate and
concurrency limits."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.client import (
    TmdbAuthError,
    TmdbClient,
    TmdbError,
    TmdbNotFound,
    TmdbUnavailable,
    _retry_after,
)
from tests.unit.tmdb.fakes import OK_BODY, Recorder, call, ok, retries, settings


# --- retries -----------------------------------------------------------------------------------
def test_429_with_retry_after_zero_is_retried_once() -> None:
    before = retries("429")
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0"}), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2
    assert retries("429") - before == 1


def test_429_retry_after_is_waited_for() -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "0.2"}), ok())

    async def go() -> tuple[float, float]:
        async with TmdbClient(settings(), transport=httpx.MockTransport(handler)) as c:
            t0 = time.monotonic()
            await c.movie(550)
            return time.monotonic() - t0, c.backoff_wait_s

    elapsed, backoff = asyncio.run(go())
    assert elapsed >= 0.19
    assert backoff == pytest.approx(0.2)


def test_503_twice_then_200_is_ok() -> None:
    before = retries("5xx")
    handler = Recorder(httpx.Response(503), httpx.Response(503), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 3
    assert retries("5xx") - before == 2


def test_timeouts_then_200_is_ok() -> None:
    before = retries("timeout")
    handler = Recorder(httpx.ReadTimeout, httpx.ReadTimeout, ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 3
    assert retries("timeout") - before == 2


def test_dropped_connection_then_200_is_ok() -> None:
    before = retries("connection")
    handler = Recorder(httpx.ConnectError, ok())
    assert call(handler) == OK_BODY
    assert retries("connection") - before == 1


def test_body_that_is_not_json_then_200_is_ok() -> None:
    before = retries("malformed")
    handler = Recorder(httpx.Response(200, content=b"<html>oops</html>"), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2
    assert retries("malformed") - before == 1


def test_always_503_gives_up_after_max_retries_plus_one_attempts() -> None:
    before = retries("5xx")
    handler = Recorder(httpx.Response(503))
    with pytest.raises(TmdbUnavailable, match="4 attempts"):
        call(handler)
    assert handler.calls == 4
    # the last attempt is not a retry
    assert retries("5xx") - before == 3


def test_max_retries_zero_tries_once() -> None:
    handler = Recorder(httpx.Response(502))
    with pytest.raises(TmdbUnavailable):
        call(handler, max_retries=0)
    assert handler.calls == 1


def test_401_is_an_auth_error_at_once() -> None:
    handler = Recorder(httpx.Response(401, json={"status_message": "Invalid API key"}))
    with pytest.raises(TmdbAuthError, match="invalid TMDB token") as info:
        call(handler)
    assert handler.calls == 1
    assert "Invalid API key" in str(info.value)


def test_404_is_not_found_at_once() -> None:
    handler = Recorder(httpx.Response(404, json={"status_message": "not found"}))
    with pytest.raises(TmdbNotFound, match="/3/movie/550"):
        call(handler)
    assert handler.calls == 1


def test_400_is_an_error_not_retried() -> None:
    handler = Recorder(httpx.Response(400, text="bad request"))
    with pytest.raises(TmdbError) as info:
        call(handler)
    assert handler.calls == 1
    assert not isinstance(info.value, TmdbAuthError | TmdbNotFound | TmdbUnavailable)
    assert "400" in str(info.value)


def test_json_array_body_is_retried_then_unavailable() -> None:
    before = retries("malformed")
    handler = Recorder(ok([1, 2, 3]))
    with pytest.raises(TmdbUnavailable, match="list"):
        call(handler)
    assert handler.calls == 4
    assert retries("malformed") - before == 3


def test_requests_metric_counts_statuses() -> None:
    def requests(status: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "cinepulse_tmdb_requests_total", {"endpoint": "movie", "status": status}
        )
        return value or 0.0

    before = (requests("503"), requests("200"))
    call(Recorder(httpx.Response(503), ok()))
    assert (requests("503") - before[0], requests("200") - before[1]) == (1, 1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("9999", 120.0), ("abc", None), ("3", 3.0), ("1.5", 1.5), ("-5", 0.0), (None, None)],
)
def test_retry_after_is_parsed_and_capped(header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert _retry_after(httpx.Response(429, headers=headers)) == expected


def test_unparseable_retry_after_falls_back_to_backoff() -> None:
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "soon"}), ok())
    assert call(handler) == OK_BODY
    assert handler.calls == 2


# --- rate and concurrency limits ---------------------------------------------------------------
def test_rate_limiter_spaces_requests() -> None:
    handler = Recorder(ok())

    async def go() -> tuple[float, float]:
        s = settings(rate_per_s=20, concurrency=20)
        async with TmdbClient(s, transport=httpx.MockTransport(handler)) as c:
            t0 = time.monotonic()
            await asyncio.gather(*(c.movie(i) for i in range(30)))
            return time.monotonic() - t0, c.rate_wait_s

    elapsed, waited = asyncio.run(go())
    assert handler.calls == 30
    # a burst of 20, then 10 more at 20/s
    assert elapsed >= 0.45
    assert waited > 0


def test_concurrency_limit_is_respected() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            in_flight -= 1
        return ok()

    async def go() -> None:
        s = settings(concurrency=2)
        async with TmdbClient(s, transport=httpx.MockTransport(handler)) as c:
            await asyncio.gather(*(c.movie(i) for i in range(10)))

    asyncio.run(go())
    assert peak == 2


def test_rate_below_one_per_second_still_works() -> None:
    handler = Recorder(ok())
    assert call(handler, rate_per_s=0.5) == OK_BODY
