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
  makes no sense: 502. Answered with ``Cache-Control: public, max-age=5``.

Errors: 404 with a message naming what was not found; 422 ``{"detail": [{"field", "reason",
"type"}]}`` naming each bad query or path parameter. Read endpoints answer with
``Cache-Control: public, max-age=60`` (``CINEPULSE_CACHE_MAX_AGE_S``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import AfterValidator, BaseModel, ValidationError

from cinepulse_api import __version__, queries
from cinepulse_api.metrics import HTTP
from cinepulse_api.settings import ApiSettings
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.postgres import make_async_pool

log = get_logger(__name__)

Window = Literal["day", "week", "month", "all"]
Bucket = Literal["day", "week", "month"]
#: days in each window, today included (``all``: no bound)
WINDOW_DAYS: dict[str, int | None] = {"day": 1, "week": 7, "month": 30, "all": None}
MAX_BIGINT = 2**63 - 1
#: Cache-Control max-age of /api/trending (live counters: short)
TRENDING_MAX_AGE_S = 5
#: Retry-After of a 503 from /api/trending (seconds)
TRENDING_RETRY_AFTER_S = 5


# --- response models -------------------------------------------------------------------------
class TopMovie(BaseModel):
    movie_id: int
    title: str
    release_date: date | None
    ratings: int
    mean_rating: float
    score: float


class TopMovies(BaseModel):
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
    genre_id: int
    name: str


class MovieTotals(BaseModel):
    ratings: int
    mean_rating: float | None
    watches: int
    completed_watches: int
    watch_seconds: float
    comments: int
    clicks: int


class Movie(BaseModel):
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
    genre: str
    events: int


class UserStats(BaseModel):
    user_id: str
    events: dict[str, int]
    total_events: int
    watch_seconds: float
    rating_distribution: dict[str, int]
    favourite_genres: list[GenreCount]
    last_activity: datetime | None


class EmotionCount(BaseModel):
    comments: int
    mean_sentiment: float


class EmotionBucket(BaseModel):
    start: date
    comments: int
    mean_sentiment: float
    emotions: dict[str, EmotionCount]


class EmotionTrends(BaseModel):
    movie_id: int | None
    genre: str | None
    bucket: Bucket
    buckets: list[EmotionBucket]


class TrendingMovie(BaseModel):
    movie_id: int
    title: str | None
    events: int


class Trending(BaseModel):
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
        self.pool: AsyncConnectionPool = make_async_pool(settings.postgres)
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

    async def fetch(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def genre_ids(self, genre: str | None) -> list[int] | None:
        if genre is None:
            return None
        rows = await self.fetch(queries.GENRE_IDS, {"genre": genre})
        if not rows:
            raise HTTPException(404, f"unknown genre {genre!r}")
        return [r["genre_id"] for r in rows]

    async def check(self) -> None:
        async with self.pool.connection(timeout=self.settings.readiness_timeout_s) as conn:
            await conn.execute("SELECT 1")


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header", "body"):
            loc = loc[1:]
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "request", "reason": reason, "type": err["type"]})
    return out


def create_app(
    settings: ApiSettings,
    *,
    today: Callable[[], date] | None = None,
    archiver_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """``today`` (UTC by default) ends the windows of /api/top_movies; tests pin it.
    ``archiver_transport`` replaces the network under the archiver client (tests)."""
    api = Api(settings, today or (lambda: datetime.now(UTC).date()), archiver_transport)
    cache_control = f"public, max-age={settings.cache_max_age_s}"

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # not waiting for a connection: a database that is down makes /readyz fail, and
        # the pool keeps trying in the background
        await api.pool.open(wait=False)
        log.info("api ready", version=__version__, pool_max=settings.postgres.pool_max_size)
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
    )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _field_errors(exc)}, status_code=422)

    @app.get("/api/top_movies", response_model=TopMovies, tags=["movies"])
    async def top_movies(
        response: Response,
        window: Annotated[Window, Query(description="day, week (7 days), month (30), all")] = (
            "week"
        ),
        genre: Annotated[str | None, Query(min_length=1, max_length=100), NoNul] = None,
        min_votes: Annotated[
            int, Query(ge=1, le=1_000_000_000, description="fewest ratings in the window")
        ] = 1,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> TopMovies:
        """Movies ranked by the Bayesian average of their ratings in the window."""
        genre_ids = await api.genre_ids(genre)
        date_from, date_to = window_bounds(window, api.today())
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
        )
        prior = await api.fetch(
            "SELECT (sum(rating_sum) / nullif(sum(ratings), 0))::float8 AS c "
            "FROM agg_movie_daily WHERE date_key BETWEEN %(date_from)s AND %(date_to)s",
            {"date_from": date_from, "date_to": date_to},
        )
        response.headers["Cache-Control"] = cache_control
        return TopMovies(
            window=window,
            genre=genre,
            min_votes=min_votes,
            prior_votes=settings.bayes_prior_votes,
            mean_rating=prior[0]["c"],
            items=[TopMovie.model_validate(r) for r in rows if r["movie_id"] is not None],
            limit=limit,
            offset=offset,
            total=rows[0]["total"],
        )

    @app.get("/api/movies/{movie_id}", response_model=Movie, tags=["movies"])
    async def movie(
        response: Response, movie_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)]
    ) -> Movie:
        """One movie (``dim_movie``), its genres and its all-time aggregates."""
        params = {"movie_id": movie_id}
        rows = await api.fetch(queries.MOVIE, params)
        if not rows:
            raise HTTPException(404, f"unknown movie {movie_id}")
        genres = await api.fetch(queries.MOVIE_GENRES, params)
        [totals] = await api.fetch(queries.MOVIE_TOTALS, params)
        response.headers["Cache-Control"] = cache_control
        return Movie.model_validate(
            {
                **rows[0],
                "genres": genres,
                "totals": totals,
            }
        )

    @app.get("/api/user_stats/{user_id}", response_model=UserStats, tags=["users"])
    async def user_stats(
        response: Response, user_id: Annotated[str, Path(min_length=1, max_length=128), NoNul]
    ) -> UserStats:
        """One user's activity: events by type, watch time, ratings, favourite genres."""
        params = {"user_id": user_id}
        if not await api.fetch(queries.USER_EXISTS, params):
            raise HTTPException(404, f"unknown user {user_id!r} (no events)")
        counts = await api.fetch(queries.USER_COUNTS, params)
        [seconds] = await api.fetch(queries.USER_WATCH_SECONDS, params)
        ratings = await api.fetch(queries.USER_RATINGS, params)
        genres = await api.fetch(queries.USER_GENRES, params)
        lasts = [r["last"] for r in counts if r["last"] is not None]
        events = {r["event_type"]: int(r["n"]) for r in counts}
        response.headers["Cache-Control"] = cache_control
        return UserStats(
            user_id=user_id,
            events=events,
            total_events=sum(events.values()),
            watch_seconds=seconds["seconds"],
            rating_distribution={_rating_label(r["rating"]): int(r["count"]) for r in ratings},
            favourite_genres=[GenreCount(genre=g["name"], events=g["events"]) for g in genres],
            last_activity=max(lasts, default=None),
        )

    @app.get("/api/emotion_trends", response_model=EmotionTrends, tags=["emotions"])
    async def emotion_trends(
        response: Response,
        movie_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
        genre: Annotated[str | None, Query(min_length=1, max_length=100), NoNul] = None,
        bucket: Annotated[Bucket, Query(description="day, week (ISO), month")] = "day",
    ) -> EmotionTrends:
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
        genre_ids = await api.genre_ids(genre)
        rows = await api.fetch(
            queries.EMOTION_TRENDS, {"bucket": bucket, "movie_id": movie_id, "genre_ids": genre_ids}
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
        response.headers["Cache-Control"] = cache_control
        return EmotionTrends(movie_id=movie_id, genre=genre, bucket=bucket, buckets=out)

    @app.get(
        "/api/trending",
        response_model=Trending,
        tags=["movies"],
        responses={
            502: {"description": "the archiver's answer made no sense"},
            503: {"description": "the archiver is down, failing or too slow (Retry-After)"},
        },
    )
    async def trending(
        response: Response, limit: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> Trending:
        """The movies with the most events in the last minutes (live, from the archiver),
        with their titles; ``title`` is null for a movie not yet in the warehouse."""
        counts = await api.archiver_trending(limit)
        movies = counts.movies[:limit]
        titles: dict[int, str] = {}
        if movies:
            ids = [m.movie_id for m in movies if 0 < m.movie_id <= MAX_BIGINT]
            rows = await api.fetch(queries.MOVIE_TITLES, {"ids": ids})
            titles = {r["movie_id"]: r["title"] for r in rows}
        response.headers["Cache-Control"] = f"public, max-age={TRENDING_MAX_AGE_S}"
        return Trending(
            minutes=counts.minutes,
            limit=limit,
            items=[
                TrendingMovie(movie_id=m.movie_id, title=titles.get(m.movie_id), events=m.events)
                for m in movies
            ],
        )

    add_health_routes(app, {"postgres": api.check}, timeout_s=settings.readiness_timeout_s)
    app.add_middleware(HttpMetricsMiddleware, metrics=HTTP)
    return app
