"""The recommender's HTTP API: answers from the model in memory, hot-swapped when a newer
version is published.

* ``GET /api/recommendations?user_id=&k=&exclude_seen=&genre=`` - up to k movies for a
  user. ``strategy`` says what produced them: ``model`` (a user the model knows),
  ``popular_in_genre`` or ``popular`` (a user it does not know, or no model published
  yet); ``model_version`` which version answered (null: popularity only).
  A user's latest events count at once: their history is read from the facts at request
  time (cached ``CINEPULSE_HISTORY__TTL_S`` seconds) and scored by the served version
  (``path`` ``fresh`` in the answers metric); if the read fails, the version's precomputed
  answer, with ``strategy`` ``model_stale``.
* ``GET /api/movies/{movie_id}/similar?k=`` - the movies closest to one movie in the
  model's item space (features included); 404 for a movie the model does not know.

``k`` is 1 to 100 (default 10); bad input is a 422 naming each field
(``{"detail": [{"field", "reason", "type"}]}``); an unknown genre is a 404. The process
loads the newest published version of ``recsys.models`` at start (popularity from the facts
when none is published) and asks the registry again every ``CINEPULSE_POLL_INTERVAL_S``; a
newer version is loaded off the event loop and swapped in with one reference assignment,
so every request is answered by exactly one version and none is dropped.

Access (:mod:`cinepulse_common.access`: the api's keys, roles and user tokens, from the
same ``CINEPULSE_AUTH__*`` variables): recommendations are per-user data - they reveal what
the user watched (``exclude_seen=false`` against ``true``) - so they need an API key
(``X-API-Key``) of an ``internal`` client (any user), or of a ``frontend`` client with a user
token (``X-User-Token``) for that very user; 401 (``WWW-Authenticate`` naming the header) for
a missing, unknown, malformed or expired credential, 403 for another user's
recommendations, both decided before the model is read. Similar movies are aggregates:
public unless ``CINEPULSE_AUTH__PUBLIC_AGGREGATES=false``. Health and metrics stay open.
Both operations count against the caller's rate limit first (the api's rules and
``CINEPULSE_RATE_LIMIT__*`` settings, :mod:`cinepulse_common.read_limits`): 429 with
``Retry-After`` when exhausted, ``X-RateLimit-*`` headers on every counted answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response
from psycopg.errors import QueryCanceled
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel

from cinepulse_common.access import (
    Credentials,
    add_security,
    aggregate_reader,
    build_access,
    user_credentials,
)
from cinepulse_common.http_errors import VALIDATION_RESPONSE, add_validation_handler
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.openapi import customise_openapi, docs_routes
from cinepulse_common.postgres import make_async_pool
from cinepulse_common.read_limits import (
    RATE_LIMITED,
    install_read_limits,
    too_many_requests_response,
)
from cinepulse_recommender import __version__, metrics, registry
from cinepulse_recommender.artefact import Artefact
from cinepulse_recommender.fresh import HISTORY, History, TtlCache, weigh
from cinepulse_recommender.recommend import (
    Answer,
    Popularity,
    Recommender,
    UnknownGenreError,
    UnknownMovieError,
)
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.warehouse import GENRES, POPULARITY

log = get_logger(__name__)

MAX_BIGINT = 2**63 - 1
RETRY_AFTER_S = 5
#: seconds without history reads after the database failed (answers are model_stale
#: meanwhile): at once on a connection or database error, after
#: :data:`READ_TIMEOUTS_BEFORE_BACKOFF` timeouts in a row (one slow read or a busy pool is
#: one user's problem, not the database's)
READ_BACKOFF_S = 1.0
READ_TIMEOUTS_BEFORE_BACKOFF = 3
EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
#: the per-user operations (a key, and for a frontend client a user token, in the OpenAPI)
USER_PATHS = ("/api/recommendations",)


class ErrorMessage(BaseModel):
    """401, 403, 404, 503: what went wrong, in one sentence."""

    detail: str


#: the OpenAPI ``responses`` of a refused request
REFUSALS: dict[int, dict[str, Any]] = {
    401: {
        "model": ErrorMessage,
        "description": "a credential is missing, unknown, malformed or expired "
        "(WWW-Authenticate names the header)",
    },
    403: {
        "model": ErrorMessage,
        "description": "the caller may not read this user's data (a frontend client's "
        "X-User-Token is for another user)",
    },
}


#: the 404s the operations answer (found by fuzzing the OpenAPI: they were undocumented)
UNKNOWN_GENRE = {"model": ErrorMessage, "description": "no movie of the model has this genre"}
UNKNOWN_MOVIE = {"model": ErrorMessage, "description": "the movie is not in the served model"}


class RecommendedMovie(BaseModel):
    movie_id: int
    title: str | None
    score: float


class Recommendations(BaseModel):
    user_id: str
    k: int
    exclude_seen: bool
    genre: str | None
    strategy: str
    model_version: str | None
    items: list[RecommendedMovie]


class SimilarMovies(BaseModel):
    movie_id: int
    k: int
    strategy: str
    model_version: str | None
    items: list[RecommendedMovie]


def read_timed_out(exc: BaseException) -> bool:
    """Whether a failed history read timed out (its own deadline, the wait for a pooled
    connection, the statement timeout) rather than failing to reach the database."""
    return isinstance(exc, (TimeoutError, PoolTimeout, QueryCanceled))


class Service:
    """The served version and the loop that replaces it."""

    def __init__(self, settings: RecommenderSettings) -> None:
        self.settings = settings
        self.pool: AsyncConnectionPool = make_async_pool(
            settings.postgres, min_size=1, max_size=2 + settings.history.connections
        )
        self.current: Recommender | None = None
        h = settings.history
        self.histories: TtlCache[str, History] = TtlCache(h.cache_size, h.ttl_s)
        #: reads in flight, one per user: concurrent requests for a user share it
        self.reading: dict[str, asyncio.Future[History]] = {}
        #: after a failed read, no read is tried before this (monotonic seconds): while the
        #: database is down, answers do not each wait for history.timeout_s
        self.reads_resume_at = 0.0
        #: history reads timed out in a row (a read that succeeds resets it)
        self.read_timeouts = 0
        metrics.MODEL_AGE.set_function(self._age)

    def _age(self) -> float:
        rec = self.current
        if rec is None or rec.trained_at is None:
            return math.nan
        return time.time() - rec.trained_at

    def swap(self, rec: Recommender) -> None:
        """Serve ``rec`` from now on (requests in flight finish on the version they took)."""
        old = self.current
        self.current = rec
        metrics.MODEL.info({"version": rec.version or "none"})
        metrics.MODEL_LOADED_AT.set(time.time())
        if old is None or old.version != rec.version:
            metrics.SWAPS.inc()
            log.info(
                "model swapped in",
                version=rec.version,
                previous=old.version if old else None,
                users=len(rec.user_pos),
                movies=len(rec.item_pos),
            )

    async def refresh(self) -> None:
        """Load the newest published version if it is not the one served; with none
        published, (re)load popularity from the facts."""
        async with self.pool.connection(timeout=self.settings.registry_timeout_s) as conn:
            row = await (await conn.execute(registry.NEWEST_PUBLISHED)).fetchone()
            if row is not None:
                version = str(row[0])
                if self.current is not None and self.current.version == version:
                    return
                cur = await conn.execute(registry.ARTEFACT, {"version": version})
                blob, sha = await cur.fetchone() or (None, None)
                if blob is None:
                    raise LookupError(f"model {version} has no artefact")
                data = registry.verified(bytes(blob), sha, version)
                rec = await asyncio.to_thread(self._build, version, data)
            else:
                pop_rows = await (await conn.execute(POPULARITY, {"since": EPOCH_START})).fetchall()
                genre_rows = await (await conn.execute(GENRES)).fetchall()
                rec = await asyncio.to_thread(self._popularity_only, pop_rows, genre_rows)
        self.swap(rec)

    def _build(self, version: str, data: bytes) -> Recommender:
        return Recommender.from_artefact(version, Artefact.from_bytes(data), self.settings.top_n)

    @staticmethod
    def _popularity_only(
        pop_rows: list[tuple[int, float, str | None]], genre_rows: list[tuple[int, str]]
    ) -> Recommender:
        import numpy as np

        genres: dict[int, list[str]] = {}
        for movie_id, name in genre_rows:
            genres.setdefault(int(movie_id), []).append(name)
        ids = [int(r[0]) for r in pop_rows]
        pop = Popularity(
            item_ids=np.array(ids, dtype=np.int64),
            popularity=np.array([float(r[1]) for r in pop_rows], dtype=np.float64),
            titles=[r[2] for r in pop_rows],
            genres=[genres.get(m, []) for m in ids],
        )
        return Recommender(None, None, pop)

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            await self.refresh_logged()

    async def refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the served version stays; the next poll retries
            metrics.LOAD_ERRORS.inc()
            log.warning("model refresh failed", error=f"{type(exc).__name__}: {exc}")

    async def history(self, user_id: str) -> History | None:
        """The user's pairs from the facts (cached briefly); None when the read failed."""
        cached = self.histories.get(user_id)
        if cached is not None:
            metrics.HISTORY_READS.labels("cached").inc()
            return cached
        if time.monotonic() < self.reads_resume_at:
            metrics.HISTORY_READS.labels("skipped").inc()
            return None
        pending = self.reading.get(user_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read_history(user_id))
            self.reading[user_id] = pending
            pending.add_done_callback(lambda _f: self.reading.pop(user_id, None))
        try:
            history = await asyncio.shield(pending)
        except Exception:  # logged, and counted towards the backoff, once per read
            metrics.HISTORY_READS.labels("failed").inc()
            return None
        metrics.HISTORY_READS.labels("read").inc()
        return history

    def _read_failed(self, exc: Exception) -> None:
        """One read failed (once, however many requests share it): a connection or database
        error stops reads for READ_BACKOFF_S at once, timeouts only when
        READ_TIMEOUTS_BEFORE_BACKOFF come in a row."""
        if time.monotonic() >= self.reads_resume_at:
            log.warning("history read failed", error=f"{type(exc).__name__}: {exc}")
        if read_timed_out(exc):
            self.read_timeouts += 1
            if self.read_timeouts < READ_TIMEOUTS_BEFORE_BACKOFF:
                return  # this user's read only: the others still read
        self.read_timeouts = 0
        self.reads_resume_at = time.monotonic() + READ_BACKOFF_S

    async def _read_history(self, user_id: str) -> History:
        try:
            history = await self._query_history(user_id)
        except Exception as exc:
            self._read_failed(exc)
            raise
        self.read_timeouts = 0
        return history

    async def _query_history(self, user_id: str) -> History:
        h, days = self.settings.history, self.settings.window_days
        since = datetime.now(UTC) - timedelta(days=days) if days else EPOCH_START
        async with asyncio.timeout(h.timeout_s):
            async with self.pool.connection(timeout=h.timeout_s) as conn:
                cur = await conn.execute(HISTORY, {"user": user_id, "since": since})
                rows = await cur.fetchall()
        history = weigh(rows, self.settings.weights)
        self.histories.put(user_id, history)
        return history

    def served(self) -> Recommender:
        rec = self.current
        if rec is None:
            raise HTTPException(
                503,
                "no model loaded yet and popularity is not available (database unreachable?)",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return rec

    def model_loaded(self) -> None:
        if self.current is None:
            raise RuntimeError("no model or popularity loaded")

    async def check_db(self) -> None:
        async with self.pool.connection(timeout=self.settings.readiness_timeout_s) as conn:
            await conn.execute("SELECT 1")


def _items(answer: Answer) -> list[RecommendedMovie]:
    return [
        RecommendedMovie(movie_id=i.movie_id, title=i.title, score=i.score) for i in answer.items
    ]


def _json(answer: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """The answer serialised once (pydantic's JSON encoder), rather than validated again
    against the route's ``response_model``, which stays for the OpenAPI schema."""
    return Response(answer.model_dump_json(), media_type="application/json", headers=headers)


def create_app(
    settings: RecommenderSettings,
    *,
    poll: bool = True,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """``poll=False``: no background polling (tests call ``app.state.service.refresh()``);
    ``clock`` (Unix seconds) is what user tokens' expiry is checked against (tests)."""
    service = Service(settings)
    access = build_access(settings.auth, service="recommender")
    if clock is not None:
        access.clock = clock
    user_errors: dict[int | str, dict[str, Any]] = {404: UNKNOWN_GENRE, **VALIDATION_RESPONSE}
    if access.enabled:
        user_errors[401], user_errors[403] = REFUSALS[401], REFUSALS[403]
    open_aggregates = not access.enabled or access.public_aggregates
    aggregate_errors: dict[int | str, dict[str, Any]] = {404: UNKNOWN_MOVIE, **VALIDATION_RESPONSE}
    if not open_aggregates:
        aggregate_errors[401] = REFUSALS[401]
    if settings.rate_limit.active:
        user_errors[429] = aggregate_errors[429] = too_many_requests_response(ErrorMessage)
    # a per-user answer is for its caller only: no shared cache keeps it
    private_headers = {
        "Cache-Control": "private, no-store",
        "Vary": f"{settings.auth.header}, {settings.auth.user_token_header}",
    }

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.pool.open(wait=False)
        await service.refresh_logged()
        task = asyncio.create_task(service.poll()) if poll else None
        log.info(
            "recommender ready",
            version=__version__,
            model=getattr(service.current, "version", None),
            auth=access.enabled,
            clients=len(access.keys.clients) if access.keys else 0,
        )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.pool.close()

    app = FastAPI(
        title="Cinepulse recommender",
        version="1",
        summary="Recommendations and similar movies from the published LightFM model.",
        description=__doc__,
        lifespan=lifespan,
        **docs_routes(settings),
    )
    app.state.service = service
    app.state.access = access
    # counted before the access checks and the model: RATE_LIMITED leads each operation's
    # dependencies
    install_read_limits(app, settings.rate_limit, access)
    add_validation_handler(app)

    @app.get(
        "/api/recommendations",
        response_model=Recommendations,
        tags=["recommendations"],
        responses=user_errors,
        dependencies=[RATE_LIMITED],
    )
    async def recommendations(
        user_id: Annotated[str, Query(min_length=1, max_length=128)],
        credentials: Annotated[Credentials, Depends(user_credentials)],
        k: Annotated[int, Query(ge=1, le=100, description="how many movies")] = 10,
        exclude_seen: Annotated[
            bool, Query(description="leave out movies the user has already interacted with")
        ] = True,
        genre: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    ) -> Response:
        """Up to k movies for the user (popular ones, in the genre if given, for a user the
        model does not know).

        Private: an ``internal`` client reads any user; a ``frontend`` client only the user
        its ``X-User-Token`` was signed for."""
        # before the model is read: a refused answer is the same whatever else was asked
        # (exclude_seen, genre, k), so it says nothing of what the user watched
        access.authorize_user(credentials.caller, user_id, credentials.user_token)
        rec = service.served()
        history = None
        if settings.history.enabled and rec.has_model:
            history = await service.history(user_id)
        try:
            answer = rec.recommend(
                user_id,
                k,
                exclude_seen=exclude_seen,
                genre=genre,
                history=history,
                stale=settings.history.enabled and rec.has_model and history is None,
            )
        except UnknownGenreError:
            raise HTTPException(404, f"unknown genre {genre!r}") from None
        metrics.ANSWERS.labels("recommendations", answer.strategy, answer.path).inc()
        return _json(
            Recommendations(
                user_id=user_id,
                k=k,
                exclude_seen=exclude_seen,
                genre=genre,
                strategy=answer.strategy,
                model_version=rec.version,
                items=_items(answer),
            ),
            private_headers,
        )

    @app.get(
        "/api/movies/{movie_id}/similar",
        response_model=SimilarMovies,
        tags=["recommendations"],
        responses=aggregate_errors,
        dependencies=[RATE_LIMITED, Depends(aggregate_reader)],
    )
    async def similar(
        movie_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
        k: Annotated[int, Query(ge=1, le=100, description="how many movies")] = 10,
    ) -> Response:
        """The k movies most like this one."""
        rec = service.served()
        try:
            answer = rec.similar(movie_id, k)
        except UnknownMovieError:
            raise HTTPException(
                404, f"unknown movie {movie_id} (not in model {rec.version or 'popularity'})"
            ) from None
        metrics.ANSWERS.labels("similar", answer.strategy, answer.path).inc()
        return _json(
            SimilarMovies(
                movie_id=movie_id,
                k=k,
                strategy=answer.strategy,
                model_version=rec.version,
                items=_items(answer),
            )
        )

    add_health_routes(
        app,
        {"model": service.model_loaded, "postgres": service.check_db},
        timeout_s=settings.readiness_timeout_s,
        metrics=not settings.metrics_port,
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics.HTTP)

    if access.enabled:
        customise_openapi(app, lambda spec: add_security(spec, access, USER_PATHS))
    return app
