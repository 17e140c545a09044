"""What the TMDB tests share: for tmdb-fetcher's client, its settings and scripted
``httpx.MockTransport`` handlers; for the offline TMDB server, its credentials and requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cinepulse_tmdb_fetcher import metrics
from cinepulse_tmdb_fetcher.client import TmdbClient
from cinepulse_tmdb_fetcher.settings import TmdbSettings
from tests.datasets import needs

# -- tmdb-fetcher's client ----------------------------------------------------------------------
BASE = "http://tmdb.test"
OK_BODY = {"id": 550, "title": "Fight Club"}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def settings(**overrides: Any) -> TmdbSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "token": "t",
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "rate_per_s": 1000,
        "max_retries": 3,
    }
    values.update(overrides)
    return TmdbSettings(**values)


class Recorder:
    """A MockTransport handler answering from a script; the last answer repeats."""

    def __init__(self, *answers: httpx.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)
        return answer

    @property
    def calls(self) -> int:
        return len(self.requests)


def call(handler: Handler, fn: str = "movie", *args: Any, **overrides: Any) -> Any:
    """Run one client call in a fresh event loop; ``fn`` is a TmdbClient method name."""

    async def go() -> Any:
        async with TmdbClient(settings(**overrides), transport=httpx.MockTransport(handler)) as c:
            return await getattr(c, fn)(*(args or (550,)))

    return asyncio.run(go())


def retries(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("cinepulse_tmdb_retries_total", {"reason": reason})
    return value or 0.0


def ok(body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=OK_BODY if body is None else body, **kwargs)


# -- the offline TMDB server ----------------------------------------------------------------------
needs_tmdb_data = [needs("tmdb-5000"), needs("tmdb-api")]  # skip, or in CI fail, without them

TOKEN = "offline-read-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AVATAR = 19995
MAX_PAGES = 5


def get(client: TestClient, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers=AUTH)


def discover(client: TestClient, **params: Any) -> dict[str, Any]:
    r = get(client, "/3/discover/movie", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
