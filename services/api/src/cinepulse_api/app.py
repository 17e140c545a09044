"""The serving API: read-only JSON over the warehouse (PostgreSQL), one async pool per process.

* ``GET /api/top_movies`` - movies ranked by a Bayesian average of their ratings in a window
  (day = today, week = the last 7 days, month = the last 30 days, all = every day; days in
  UTC, today included) read from ``agg_movie_daily``:
  ``score = v/(v+m)*R + m/(v+m)*C`` with v the movie's ratings in the window, R their mean,
  C the mean of every rating in the window (all movies) and m the prior weight
  (``CINEPULSE_BAYES_PRIOR_VOTES``, default 10). A movie with few ratings is pulled towards C;
  ``min_votes`` drops movies with fewer ratings than that. Ties: more ratings first, then id.
* ``GET /api/movies/{movie_id}`` - the movie, its genres and its all-time aggregates.
* ``GET /api/user_stats/{user_id}`` - one user's activity, straight from the facts.
* ``GET /api/emotion_trends`` - comments per emotion and mean sentiment per day/week/month,
  for a movie, a genre or everything, from ``agg_emotion_daily``.
* ``GET /api/trending`` - the movies with the most events in the last minutes, live from the
  archiver's ``/counters/trending`` (``CINEPULSE_ARCHIVER_URL``), with their ``dim_movie``
  titles (``null`` for a movie the warehouse does not know yet). The archiver down, failing or
  slower than ``CINEPULSE_ARCHIVER_TIMEOUT_S``: 503 with ``Retry-After``; an answer that
  makes no sense: 502. Kept ``CINEPULSE_TRENDING_CACHE_S`` (5 s) per ``limit``; answered with
  ``Cache-Control: public, max-age=5``.

Access (:mod:`cinepulse_common.access`, shared with the recommender): aggregates are public
unless ``CINEPULSE_AUTH__PUBLIC_AGGREGATES=false``; per-user data needs an API key
(``X-API-Key``) of an ``internal`` client, or of a ``frontend`` client with a user token
(``X-User-Token``) for that very user. 401 names the missing or bad credential, 403 what the
caller may not read.

Caching: every 200 carries an ``ETag`` (a strong validator over the body) and a
``Cache-Control``: ``public, max-age=60`` for aggregates (``CINEPULSE_CACHE_MAX_AGE_S``;
``private`` when aggregates need a key), ``private, max-age=60`` with ``Vary`` on the
credentials for per-user answers. A request whose ``If-None-Match`` holds that ETag gets 304
with no body (the ETag is over the answer, not the data's version). The api keeps each
aggregate answer ``CINEPULSE_ANSWER_CACHE_S`` (10 s; at most ``CINEPULSE_ANSWER_CACHE_ENTRIES``,
1,024, the least recently used dropped first; requests missing the same answer at once share
one query): aggregates change only when the aggregates job runs. An answer's key is what the
request means: its validated parameters with their defaults, whatever their order or
spelling (``offset=0`` or none, a genre in any ASCII case); undeclared parameters are
ignored, and an out-of-range value is a 422 that reaches neither the cache nor the database.
Per-user answers are computed for every request, in one query.

Errors: 404 with a message naming what was not found; 422 ``{"detail": [{"field", "reason",
"type"}]}`` naming each bad query or path parameter; 503 with ``Retry-After`` when the
database does not answer in time (pool exhausted, statement timeout, connection lost). Every
error body is in the OpenAPI document.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from cinepulse_api import __version__, queries
from cinepulse_api.cache import Answer, AnswerCache, answer_key, cached_answer, fold_name
from cinepulse_api.metrics import DB_ERRORS, DB_POOL_WAIT_SECONDS, DB_QUERY_SECONDS, HTTP
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import (
    Credentials,
    add_security,
    aggregate_reader,
    build_access,
    user_credentials,
)
from cinepulse_common.http_errors import add_validation_handler
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.openapi import customise_openapi, docs_routes
from cinepulse_common.postgres import make_async_pool

log = get_logger(__name__)

Window = Literal["day", "week", "month", "all"]
Bucket = Literal["day", "week", "month"]
#: days in each window, today included (``all``: no bound)
WINDOW_DAYS: dict[str, int | None] = {"day": 1, "week": 7, "month": 30, "all": None}
MAX_BIGINT = 2**63 - 1
#: Cache-Control max-age of /api/trending (live counters: short)
TRENDING_MAX_AGE_S = 5
#: the most movies /api/trending answers (so also the most answers its cache holds: one per limit)
TRENDING_LIMIT_MAX = 100
#: Retry-After of a 503 from /api/trending (seconds)
TRENDING_RETRY_AFTER_S = 5
#: Retry-After of a 503 when the database does not answer (seconds)
DB_RETRY_AFTER_S = 5


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# --- error bodies ----------------------------------------------------------------------------
class ErrorMessage(BaseModel):
    """401, 403, 404, 502, 503: what went wrong, in one sentence."""

    model_config = _examples({"detail": "unknown movie 99"})
    detail: str


class FieldError(BaseModel):
    model_config = _examples(
        {"field": "limit", "reason": "Input should be less than or equal to 100", "type": "x"}
    )
    field: str
    reason: str
    type: str


class ValidationErrors(BaseModel):
    """422: each bad query or path parameter, named."""

    model_config = _examples(
        {
            "detail": [
                {
                    "field": "limit",
                    "reason": "Input should be less than or equal to 100",
                    "type": "less_than_equal",
                }
            ]
        }
    )
    detail: list[FieldError]


# --- response models -------------------------------------------------------------------------
EXAMPLE_TOP_MOVIE: dict[str, Any] = {
    "movie_id": 603,
    "title": "The Matrix",
    "release_date": "1999-03-30",
    "ratings": 20,
    "mean_rating": 4.5,
    "score": 4.354,
}
EXAMPLE_TOTALS: dict[str, Any] = {
    "ratings": 20,
    "mean_rating": 4.5,
    "watches": 4,
    "completed_watches": 3,
    "watch_seconds": 21600.0,
    "comments": 2,
    "clicks": 9,
}
EXAMPLE_BUCKET: dict[str, Any] = {
    "start": "2026-11-16",
    "comments": 3,
    "mean_sentiment": 0.367,
    "emotions": {
        "joy": {"comments": 2, "mean_sentiment": 0.8},
        "sadness": {"comments": 1, "mean_sentiment": -0.5},
    },
}


class TopMovie(BaseModel):
    model_config = _examples(EXAMPLE_TOP_MOVIE)
    movie_id: int
    title: str
    release_date: date | None
    ratings: int
    mean_rating: float
    score: float


class TopMovies(BaseModel):
    model_config = _examples(
        {
            "window": "week",
            "genre": None,
            "min_votes": 1,
            "prior_votes": 10.0,
            "mean_rating": 4.06,
            "items": [EXAMPLE_TOP_MOVIE],
            "limit": 20,
            "offset": 0,
            "total": 1,
        }
    )
    window: Window
    genre: str | None
    min_votes: int
    prior_votes: float
    mean_rating: float | None
    items: list[TopMovie]
    limit: int
    offset: int
    total: int


class Genre(BaseModel):
    model_config = _examples({"genre_id": 878, "name": "Science Fiction"})
    genre_id: int
    name: str


class MovieTotals(BaseModel):
    model_config = _examples(EXAMPLE_TOTALS)
    ratings: int
    mean_rating: float | None
    watches: int
    completed_watches: int
    watch_seconds: float
    comments: int
    clicks: int


class Movie(BaseModel):
    model_config = _examples(
        {
            "movie_id": 603,
            "imdb_id": "tt0133093",
            "title": "The Matrix",
            "original_title": "The Matrix",
            "original_language": "en",
            "overview": "Set in the 22nd century, The Matrix tells the story of a computer "
            "hacker who joins a group of underground insurgents.",
            "tagline": "Welcome to the Real World.",
            "status": "Released",
            "release_date": "1999-03-30",
            "runtime_minutes": 136,
            "budget": 63000000,
            "revenue": 463517383,
            "popularity": 104.3,
            "vote_average": 7.9,
            "vote_count": 8907,
            "poster_path": "/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg",
            "adult": False,
            "updated_at": "2026-11-20T08:00:00Z",
            "genres": [{"genre_id": 28, "name": "Action"}],
            "totals": EXAMPLE_TOTALS,
        }
    )
    movie_id: int
    imdb_id: str | None
    title: str
    original_title: str | None
    original_language: str | None
    overview: str | None
    tagline: str | None
    status: str | None
    release_date: date | None
    runtime_minutes: int | None
    budget: int | None
    revenue: int | None
    popularity: float | None
    vote_average: float | None
    vote_count: int | None
    poster_path: str | None
    adult: bool
    updated_at: datetime
    genres: list[Genre]
    totals: MovieTotals


class GenreCount(BaseModel):
    model_config = _examples({"genre": "Drama", "events": 6})
    genre: str
    events: int


class UserStats(BaseModel):
    model_config = _examples(
        {
            "user_id": "u-1042",
            "events": {"watch": 2, "rate": 4, "comment": 1, "click": 3},
            "total_events": 10,
            "watch_seconds": 9400.0,
            "rating_distribution": {"3.0": 1, "4.5": 2, "5.0": 1},
            "favourite_genres": [{"genre": "Drama", "events": 6}],
            "last_activity": "2026-11-19T21:30:00Z",
        }
    )
    user_id: str
    events: dict[str, int]
    total_events: int
    watch_seconds: float
    rating_distribution: dict[str, int]
    favourite_genres: list[GenreCount]
    last_activity: datetime | None


class EmotionCount(BaseModel):
    model_config = _examples({"comments": 2, "mean_sentiment": 0.8})
    comments: int
    mean_sentiment: float


class EmotionBucket(BaseModel):
    model_config = _examples(EXAMPLE_BUCKET)
    start: date
    comments: int
    mean_sentiment: float
    emotions: dict[str, EmotionCount]


class EmotionTrends(BaseModel):
    model_config = _examples(
        {
            "movie_id": 603,
            "genre": None,
            "bucket": "week",
            "buckets": [EXAMPLE_BUCKET],
        }
    )
    movie_id: int | None
    genre: str | None
    bucket: Bucket
    buckets: list[EmotionBucket]


class TrendingMovie(BaseModel):
    model_config = _examples({"movie_id": 603, "title": "The Matrix", "events": 9})
    movie_id: int
    title: str | None
    events: int


class Trending(BaseModel):
    model_config = _examples(
        {
            "minutes": 15,
            "limit": 10,
            "items": [
                {"movie_id": 603, "title": "The Matrix", "events": 9},
                {"movie_id": 99, "title": None, "events": 4},
            ],
        }
    )
    minutes: int
    limit: int
    items: list[TrendingMovie]


class _ArchiverCount(BaseModel):
    movie_id: int
    events: int


class _ArchiverTrending(BaseModel):
    """What the archiver's ``/counters/trending`` answers (other fields ignored)."""

    minutes: int
    movies: list[_ArchiverCount]


# --- helpers ---------------------------------------------------------------------------------
def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here (422) rather than fail in the query
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


NoNul = AfterValidator(_no_nul)


def date_key(d: date) -> int:
    return d.year * 10_000 + d.month * 100 + d.day


def window_bounds(window: str, today: date) -> tuple[int, int]:
    """``(first, last)`` date keys of the window ending ``today`` (inclusive)."""
    days = WINDOW_DAYS[window]
    if days is None:
        return 0, 99_991_231
    return date_key(today - timedelta(days=days - 1)), date_key(today)


def _rating_label(rating: float) -> str:
    return f"{rating:.1f}"


async def _read_only_session(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every statement is its own read-only transaction: no BEGIN and ROLLBACK round trips
    around each query (the pool rolls back a connection returned inside a transaction), and
    the api cannot write even by mistake."""
    await conn.set_autocommit(True)
    await conn.execute("SET default_transaction_read_only = on")


#: the query histogram's children by query name (a label lookup takes a lock: hot path)
_QUERY_TIMERS: dict[str, Any] = {}


class Api:
    """What a request needs: the pool and the archiver client (both opened in the lifespan)
    and the settings."""

    def __init__(
        self,
        settings: ApiSettings,
        today: Callable[[], date],
        archiver_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.today = today
        self.pool: AsyncConnectionPool = make_async_pool(
            settings.postgres, timeout=settings.db_pool_timeout_s, configure=_read_only_session
        )
        self.archiver_transport = archiver_transport
        self.archiver: httpx.AsyncClient | None = None

    def open_archiver(self) -> httpx.AsyncClient:
        self.archiver = httpx.AsyncClient(
            base_url=self.settings.archiver_url,
            timeout=self.settings.archiver_timeout_s,
            transport=self.archiver_transport,
        )
        return self.archiver

    async def archiver_trending(self, limit: int) -> _ArchiverTrending:
        """The archiver's live counters; HTTPException 503 (down, slow, failing) or 502
        (an answer that is not the expected JSON)."""
        unavailable = {"Retry-After": str(TRENDING_RETRY_AFTER_S)}
        if self.archiver is None:  # only outside the lifespan
            raise HTTPException(503, "the archiver client is not open", headers=unavailable)
        try:
            r = await self.archiver.get("/counters/trending", params={"limit": limit})
        except httpx.TimeoutException as exc:
            log.warning("archiver timed out", url=self.settings.archiver_url, error=repr(exc))
            raise HTTPException(
                503,
                "trending is unavailable: the archiver did not answer within "
                f"{self.settings.archiver_timeout_s:g}s",
                headers=unavailable,
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("archiver unreachable", url=self.settings.archiver_url, error=repr(exc))
            raise HTTPException(
                503,
                f"trending is unavailable: the archiver cannot be reached ({type(exc).__name__})",
                headers=unavailable,
            ) from exc
        if r.status_code >= 500:
            log.warning("archiver failed", status=r.status_code)
            raise HTTPException(
                503,
                f"trending is unavailable: the archiver answered {r.status_code}",
                headers=unavailable,
            )
        if r.status_code != 200:
            log.error("archiver refused the request", status=r.status_code, body=r.text[:200])
            raise HTTPException(502, f"the archiver answered {r.status_code}")
        try:
            return _ArchiverTrending.model_validate_json(r.content)
        except ValidationError as exc:
            log.error("unexpected archiver answer", body=r.text[:200])
            raise HTTPException(502, "the archiver's answer is not the expected JSON") from exc

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; the wait for it is measured."""
        start = time.perf_counter()
        async with self.pool.connection() as conn:
            DB_POOL_WAIT_SECONDS.observe(time.perf_counter() - start)
            yield conn

    async def fetch(
        self,
        query: queries.Query,
        params: dict[str, Any],
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of one query (on ``conn``, or a pooled connection of its own), timed
        into ``cinepulse_api_db_query_duration_seconds{query=<name>}``."""
        if conn is None:
            async with self.connection() as own:
                return await self.fetch(query, params, own)
        timer = _QUERY_TIMERS.get(query.name)
        if timer is None:
            timer = _QUERY_TIMERS[query.name] = DB_QUERY_SECONDS.labels(query.name)
        start = time.perf_counter()
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query.sql, params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            DB_ERRORS.labels(query.name, type(exc).__name__).inc()
            raise
        finally:
            timer.observe(time.perf_counter() - start)

    async def genre_ids(
        self, genre: str | None, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[int] | None:
        if genre is None:
            return None
        rows = await self.fetch(queries.GENRE_IDS, {"genre": genre}, conn)
        if not rows:
            raise HTTPException(404, f"unknown genre {genre!r}")
        return [r["genre_id"] for r in rows]

    async def check(self) -> None:
        async with self.pool.connection(timeout=self.settings.readiness_timeout_s) as conn:
            await conn.execute("SELECT 1")


# --- OpenAPI: the answers each operation may give --------------------------------------------
_HEADER_DOCS = {
    "ETag": {"description": "strong validator of the body", "schema": {"type": "string"}},
    "Cache-Control": {
        "description": "public (aggregates) or private (per-user), max-age in seconds",
        "schema": {"type": "string"},
    },
}
_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "a credential is missing, unknown, malformed or expired (WWW-Authenticate names it)",
        "missing X-API-Key header",
    ),
    403: (
        "the caller's role does not allow this (another user's data)",
        "the X-User-Token is for another user; client 'web' (role frontend) may read only "
        "that user's data",
    ),
    404: ("what the request names does not exist", "unknown movie 99"),
    502: ("the archiver's answer made no sense", "the archiver's answer is not the expected JSON"),
    503: (
        "a dependency is down or too slow; retry after Retry-After seconds",
        "the database is unavailable (PoolTimeout); retry later",
    ),
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a read operation: 200's headers, 304, 422 and ``codes``."""
    out: dict[int | str, dict[str, Any]] = {
        200: {"headers": _HEADER_DOCS},
        304: {"description": "Not modified: If-None-Match holds the current ETag (no body)"},
        422: {"model": ValidationErrors, "description": "a query or path parameter is invalid"},
    }
    for code in codes:
        description, example = _ERRORS[code]
        out[code] = {
            "model": ErrorMessage,
            "description": description,
            "content": {"application/json": {"example": {"detail": example}}},
        }
    return out


#: the per-user operations (a key, and for a frontend client a user token, in the OpenAPI)
USER_PATHS = ("/api/user_stats/{user_id}",)


def create_app(
    settings: ApiSettings,
    *,
    today: Callable[[], date] | None = None,
    archiver_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] | None = None,
    cache_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """``today`` (UTC by default) ends the windows of /api/top_movies; tests pin it.
    ``archiver_transport`` replaces the network under the archiver client (tests);
    ``clock`` (Unix seconds) is what user tokens' expiry is checked against (tests);
    ``cache_clock`` (seconds) is what the answer caches' TTLs run on (tests)."""
    api = Api(settings, today or (lambda: datetime.now(UTC).date()), archiver_transport)
    access = build_access(settings.auth, service="api")
    if clock is not None:
        access.clock = clock
    auth = settings.auth
    # aggregate answers; trending's (live counters) are kept shorter, one per limit at most
    cache: AnswerCache[Answer] = AnswerCache(
        settings.answer_cache_s, settings.answer_cache_entries, cache_clock
    )
    live_cache: AnswerCache[Answer] = AnswerCache(
        settings.trending_cache_s, TRENDING_LIMIT_MAX, cache_clock
    )
    max_age = settings.cache_max_age_s
    # aggregates are the same for everyone; when they need a key, no shared cache keeps them
    shared = "public" if not access.enabled or access.public_aggregates else "private"
    aggregate_cache = f"{shared}, max-age={max_age}"
    trending_cache = f"{shared}, max-age={TRENDING_MAX_AGE_S}"
    private_cache = f"private, max-age={max_age}"
    private_vary = f"{auth.header}, {auth.user_token_header}"

    open_aggregates = not access.enabled or access.public_aggregates
    aggregate_errors: tuple[int, ...] = () if open_aggregates else (401,)
    user_errors: tuple[int, ...] = (401, 403) if access.enabled else ()

    def aggregate_get(path: str, model: type[BaseModel], tags: list[str], *codes: int) -> Any:
        """``app.get`` of an aggregate read: public or keyed, documented answers."""
        return app.get(
            path,
            response_model=model,
            tags=list(tags),
            responses=responses(*aggregate_errors, *codes),
            dependencies=[Depends(aggregate_reader)],
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # not waiting for a connection: a database that is down makes /readyz fail, and
        # the pool keeps trying in the background
        await api.pool.open(wait=False)
        log.info(
            "api ready",
            version=__version__,
            pool_max=settings.postgres.pool_max_size,
            auth=access.enabled,
            public_aggregates=access.public_aggregates,
            clients=len(access.keys.clients) if access.keys else 0,
        )
        try:
            async with api.open_archiver():
                yield
        finally:
            api.archiver = None
            await api.pool.close()

    app = FastAPI(
        title="Cinepulse API",
        version="1",
        summary="Top movies, movie details, user statistics, emotion trends and trending.",
        description=__doc__,
        lifespan=lifespan,
        **docs_routes(settings),
    )
    app.state.access = access
    app.state.api = api
    app.state.answer_cache = cache
    app.state.trending_cache = live_cache

    add_validation_handler(app)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", path=request.url.path, error=repr(exc))
        return JSONResponse(
            {"detail": f"the database is unavailable ({type(exc).__name__}); retry later"},
            status_code=503,
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    # a pool that cannot hand out a connection in time, a statement timeout
    # (QueryCanceled), a lost connection: the caller may retry, nothing is wrong with it
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)

    @aggregate_get("/api/top_movies", TopMovies, ["movies"], 404, 503)
    async def top_movies(
        request: Request,
        window: Annotated[Window, Query(description="day, week (7 days), month (30), all")] = (
            "week"
        ),
        genre: Annotated[str | None, Query(min_length=1, max_length=100), NoNul] = None,
        min_votes: Annotated[
            int, Query(ge=1, le=1_000_000_000, description="fewest ratings in the window")
        ] = 1,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        """Movies ranked by the Bayesian average of their ratings in the window."""
        date_from, date_to = window_bounds(window, api.today())
        key = answer_key(
            "top_movies",
            date_from=date_from,
            date_to=date_to,
            genre=fold_name(genre),
            min_votes=min_votes,
            limit=limit,
            offset=offset,
        )

        async def compute() -> Answer:
            async with api.connection() as conn:
                genre_ids = await api.genre_ids(genre, conn)
                rows = await api.fetch(
                    queries.TOP_MOVIES,
                    {
                        "date_from": date_from,
                        "date_to": date_to,
                        "m": settings.bayes_prior_votes,
                        "min_votes": min_votes,
                        "genre_ids": genre_ids,
                        "limit": limit,
                        "offset": offset,
                    },
                    conn,
                )
            return Answer.of(
                TopMovies(
                    window=window,
                    genre=genre,
                    min_votes=min_votes,
                    prior_votes=settings.bayes_prior_votes,
                    mean_rating=rows[0]["c"],
                    items=[TopMovie.model_validate(r) for r in rows if r["movie_id"] is not None],
                    limit=limit,
                    offset=offset,
                    total=rows[0]["total"],
                ),
                "genre",
            )

        answer = await cache.get_or_compute(key, compute)
        return cached_answer(request, answer.echoing(genre=genre), aggregate_cache)

    @aggregate_get("/api/movies/{movie_id}", Movie, ["movies"], 404, 503)
    async def movie(
        request: Request, movie_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)]
    ) -> Response:
        """One movie (``dim_movie``), its genres and its all-time aggregates."""
        key = answer_key("movie", movie_id=movie_id)

        async def compute() -> Answer:
            params = {"movie_id": movie_id}
            async with api.connection() as conn:
                rows = await api.fetch(queries.MOVIE, params, conn)
                if not rows:
                    raise HTTPException(404, f"unknown movie {movie_id}")
                genres = await api.fetch(queries.MOVIE_GENRES, params, conn)
                [totals] = await api.fetch(queries.MOVIE_TOTALS, params, conn)
            return Answer.of(Movie.model_validate({**rows[0], "genres": genres, "totals": totals}))

        answer = await cache.get_or_compute(key, compute)
        return cached_answer(request, answer.encoded, aggregate_cache)

    @app.get(
        "/api/user_stats/{user_id}",
        response_model=UserStats,
        tags=["users"],
        responses=responses(*user_errors, 404, 503),
    )
    async def user_stats(
        request: Request,
        user_id: Annotated[str, Path(min_length=1, max_length=128), NoNul],
        credentials: Annotated[Credentials, Depends(user_credentials)],
    ) -> Response:
        """One user's activity: events by type, watch time, ratings, favourite genres.

        Private: an ``internal`` client reads any user; a ``frontend`` client only the user
        its ``X-User-Token`` was signed for."""
        access.authorize_user(credentials.caller, user_id, credentials.user_token)
        [row] = await api.fetch(queries.USER_STATS, {"user_id": user_id})
        if not row["known"]:
            raise HTTPException(404, f"unknown user {user_id!r} (no events)")
        events = {k: int(n) for k, n in row["events"].items()}
        answer = UserStats(
            user_id=user_id,
            events=events,
            total_events=sum(events.values()),
            watch_seconds=row["watch_seconds"],
            rating_distribution={
                _rating_label(r["rating"]): int(r["count"]) for r in row["ratings"]
            },
            favourite_genres=[
                GenreCount(genre=g["name"], events=g["events"]) for g in row["genres"]
            ],
            last_activity=row["last_activity"],
        )
        return cached_answer(request, answer, private_cache, private_vary)

    @aggregate_get("/api/emotion_trends", EmotionTrends, ["emotions"], 404, 503)
    async def emotion_trends(
        request: Request,
        movie_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
        genre: Annotated[str | None, Query(min_length=1, max_length=100), NoNul] = None,
        bucket: Annotated[Bucket, Query(description="day, week (ISO), month")] = "day",
    ) -> Response:
        """Comments per emotion and mean sentiment per bucket, for a movie, a genre or all."""
        if movie_id is not None and genre is not None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "genre"),
                        "msg": "give movie_id or genre, not both",
                        "type": "mutually_exclusive",
                    }
                ]
            )
        key = answer_key("emotion_trends", movie_id=movie_id, genre=fold_name(genre), bucket=bucket)

        async def compute() -> Answer:
            async with api.connection() as conn:
                genre_ids = await api.genre_ids(genre, conn)
                rows = await api.fetch(
                    queries.EMOTION_TRENDS,
                    {"bucket": bucket, "movie_id": movie_id, "genre_ids": genre_ids},
                    conn,
                )
            buckets: dict[date, dict[str, tuple[int, float]]] = {}
            for r in rows:
                buckets.setdefault(r["bucket_start"], {})[r["emotion"]] = (
                    int(r["comments"]),
                    float(r["sentiment_sum"]),
                )
            out = []
            for start, emotions in buckets.items():
                comments = sum(n for n, _ in emotions.values())
                sentiment = sum(s for _, s in emotions.values())
                out.append(
                    EmotionBucket(
                        start=start,
                        comments=comments,
                        mean_sentiment=sentiment / comments,
                        emotions={
                            e: EmotionCount(comments=n, mean_sentiment=s / n)
                            for e, (n, s) in emotions.items()
                        },
                    )
                )
            return Answer.of(
                EmotionTrends(movie_id=movie_id, genre=genre, bucket=bucket, buckets=out), "genre"
            )

        answer = await cache.get_or_compute(key, compute)
        return cached_answer(request, answer.echoing(genre=genre), aggregate_cache)

    @aggregate_get("/api/trending", Trending, ["movies"], 502, 503)
    async def trending(
        request: Request, limit: Annotated[int, Query(ge=1, le=TRENDING_LIMIT_MAX)] = 10
    ) -> Response:
        """The movies with the most events in the last minutes (live, from the archiver),
        with their titles; ``title`` is null for a movie not yet in the warehouse. 503 with
        ``Retry-After`` when the archiver is down or slow."""

        async def compute() -> Answer:
            counts = await api.archiver_trending(limit)
            movies = counts.movies[:limit]
            titles: dict[int, str] = {}
            if movies:
                ids = [m.movie_id for m in movies if 0 < m.movie_id <= MAX_BIGINT]
                rows = await api.fetch(queries.MOVIE_TITLES, {"ids": ids})
                titles = {r["movie_id"]: r["title"] for r in rows}
            return Answer.of(
                Trending(
                    minutes=counts.minutes,
                    limit=limit,
                    items=[
                        TrendingMovie(
                            movie_id=m.movie_id, title=titles.get(m.movie_id), events=m.events
                        )
                        for m in movies
                    ],
                )
            )

        answer = await live_cache.get_or_compute(answer_key("trending", limit=limit), compute)
        return cached_answer(request, answer.encoded, trending_cache)

    add_health_routes(app, {"postgres": api.check}, timeout_s=settings.readiness_timeout_s)
    app.add_middleware(HttpMetricsMiddleware, metrics=HTTP)

    if access.enabled:
        customise_openapi(app, lambda spec: add_security(spec, access, USER_PATHS))
    return app
