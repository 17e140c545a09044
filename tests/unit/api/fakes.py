"""What the api's unit tests share: settings with no database behind them, an app built on
them, and stand-ins for the warehouse and the archiver that count what they are asked
(the app over them, its caches on a clock the test moves: :func:`cached_app`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from typing import Any

import httpx
from fastapi.testclient import TestClient

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
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


def make_client(**overrides: object) -> TestClient:
    settings = ApiSettings.model_validate(
        {"postgres": NO_DB, "readiness_timeout_s": 0.5, "db_pool_timeout_s": 0.5, "auth": AUTH}
        | overrides
    )
    return TestClient(create_app(settings, clock=lambda: NOW))


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
def cached_app(
    **overrides: object,
) -> Iterator[tuple[TestClient, Warehouse, Archiver, list[float]]]:
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
