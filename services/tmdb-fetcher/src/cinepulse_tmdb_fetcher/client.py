"""An async TMDB API v3 client: rate- and concurrency-limited, retrying what is transient.

* 429: waits ``Retry-After`` (or backs off) and retries; 5xx, timeouts, dropped
  connections and unparseable bodies: exponential backoff with jitter, then retry, up to
  ``max_retries``; then :class:`TmdbUnavailable`.
* 401: :class:`TmdbAuthError` at once ("invalid TMDB token"); 404: :class:`TmdbNotFound`.
* Every request waits for a slot of the concurrency limit and of the rate limiter
  (aiolimiter's leaky bucket); the time spent waiting is measured.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from cinepulse_common.logging import get_logger
from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.settings import TmdbSettings

log = get_logger(__name__)


class TmdbError(Exception):
    """A TMDB request failed for good."""


class TmdbAuthError(TmdbError):
    pass


class TmdbNotFound(TmdbError):
    pass


class TmdbUnavailable(TmdbError):
    """Retries exhausted (429s, 5xx, timeouts or malformed bodies)."""


class TmdbClient:
    def __init__(self, settings: TmdbSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        token, api_key = settings.credentials()
        headers = {"Accept": "application/json", "User-Agent": "cinepulse-tmdb-fetcher"}
        self._params: dict[str, str] = {"language": settings.language}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif api_key:
            self._params["api_key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=settings.timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=settings.concurrency),
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        # a leaky bucket: at most rate_per_s requests in any second (below one per second:
        # one request per 1/rate seconds; AsyncLimiter refuses a capacity under 1)
        rate = settings.rate_per_s
        self._limiter = AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)
        self.rate_wait_s = 0.0
        self.backoff_wait_s = 0.0

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> TmdbClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the endpoints --------------------------------------------------------------------
    async def genres(self) -> dict[str, Any]:
        return await self.get("/3/genre/movie/list", endpoint="genre_list")

    async def discover(
        self, page: int, gte: str | None = None, lte: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "page": page,
            "sort_by": "primary_release_date.asc",
            "include_adult": "false",
        }
        if gte:
            params["primary_release_date.gte"] = gte
        if lte:
            params["primary_release_date.lte"] = lte
        return await self.get("/3/discover/movie", params, endpoint="discover")

    async def changes(self, start: str, end: str, page: int) -> dict[str, Any]:
        params = {"start_date": start, "end_date": end, "page": page}
        return await self.get("/3/movie/changes", params, endpoint="changes")

    async def movie(self, movie_id: int) -> dict[str, Any]:
        params = {"append_to_response": "keywords,credits"}
        return await self.get(f"/3/movie/{movie_id}", params, endpoint="movie")

    # --- the request loop -------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security

    async def _sleep(self, seconds: float) -> None:
        self.backoff_wait_s += seconds
        metrics.BACKOFF_WAIT.inc(seconds)
        await asyncio.sleep(seconds)

    async def get(
        self, path: str, params: dict[str, Any] | None = None, *, endpoint: str
    ) -> dict[str, Any]:
        query = self._params | (params or {})
        last = "no attempt"
        for attempt in range(self.settings.max_retries + 1):
            async with self._slots:
                waited = time.monotonic()
                async with self._limiter:
                    pass
                waited = time.monotonic() - waited
                self.rate_wait_s += waited
                metrics.RATE_LIMIT_WAIT.inc(waited)
                try:
                    response = await self._http.get(path, params=query)
                except httpx.TimeoutException:
                    reason, retry_after, last = (
                        "timeout",
                        None,
                        f"timed out after {self.settings.timeout_s:g}s",
                    )
                    metrics.REQUESTS.labels(endpoint, "error").inc()
                except httpx.DecodingError as exc:  # a corrupt compressed body
                    reason, retry_after, last = "malformed", None, f"undecodable body: {exc}"
                    metrics.REQUESTS.labels(endpoint, "error").inc()
                except httpx.TransportError as exc:
                    reason, retry_after, last = "connection", None, f"{type(exc).__name__}: {exc}"
                    metrics.REQUESTS.labels(endpoint, "error").inc()
                else:
                    status = response.status_code
                    metrics.REQUESTS.labels(endpoint, str(status)).inc()
                    if status == 200:
                        try:
                            data = response.json()
                        except ValueError:
                            reason, retry_after = "malformed", None
                            last = f"unparseable body ({len(response.content)} bytes)"
                        else:
                            if isinstance(data, dict):
                                return data
                            reason, retry_after = "malformed", None
                            last = f"body is JSON {type(data).__name__}, not an object"
                    elif status == 401:
                        raise TmdbAuthError(
                            f"invalid TMDB token: {path} answered 401 "
                            f"({_status_message(response)}); check CINEPULSE_TMDB__TOKEN_FILE"
                        )
                    elif status == 404:
                        raise TmdbNotFound(f"{path}: 404 ({_status_message(response)})")
                    elif status == 429:
                        reason, last = "429", "429 Too Many Requests"
                        retry_after = _retry_after(response)
                    elif status >= 500:
                        reason, retry_after, last = "5xx", None, f"{status} from TMDB"
                    else:
                        raise TmdbError(f"{path}: {status} ({_status_message(response)})")
            if attempt == self.settings.max_retries:
                break
            metrics.RETRIES.labels(reason).inc()
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning(
                "TMDB request retried",
                path=path,
                reason=last,
                attempt=attempt + 1,
                in_s=round(delay, 2),
            )
            await self._sleep(delay)
        raise TmdbUnavailable(
            f"{path}: gave up after {self.settings.max_retries + 1} attempts (last: {last})"
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), 120.0))
    except ValueError:
        return None


def _status_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "status_message" in body:
        return str(body["status_message"])
    return response.text[:200]
