"""The serving API: read-only JSON over the warehouse (PostgreSQL), one async pool per process.

* ``GET /api/top_movies`` - movies ranked by a Bayesian average of their ratings in a window
  (day = today, week = the last 7 days, month = the last 30 days, all = every day; days in
  UTC, today included), by the warehouse's ``analytics.bayesian_top_movies`` (migration
  0010; the explorer ranks with it too) over ``agg_movie_daily``:
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

Rate limits (:mod:`cinepulse_common.read_limits`, shared with the recommender): every
``/api/`` request counts against its caller's limit, per pod: an API key's client's
(``CINEPULSE_RATE_LIMIT__PER_CLIENT``, 1,200 a minute, or its own in
``CINEPULSE_RATE_LIMIT__CLIENTS``), or without a key its address's
(``CINEPULSE_RATE_LIMIT__ANONYMOUS``, 300 a minute); a cached answer counts too. Counted
answers carry ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``;
an exhausted limit is 429 with ``Retry-After``, naming the limit.

Errors: 404 with a message naming what was not found; 422 ``{"detail": [{"field", "reason",
"type"}]}`` naming each bad query or path parameter; 503 with ``Retry-After`` when the
database does not answer in time (pool exhausted, statement timeout, connection lost). Every
error body is in the OpenAPI document.
"""

# The docstring above is the OpenAPI document's description. The parts: the answers in
# ``schemas``, the warehouse and the archiver in ``adapters``, the typed dependencies in
# ``deps``, one router per area in ``routes``, the answer cache in ``cache``; this module
# only builds what they share (kept on ``app.state``) and composes them.

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import httpx
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from cinepulse_api import __version__
from cinepulse_api.adapters import Archiver, Warehouse
from cinepulse_api.cache import Answer, AnswerCache, CachePolicy
from cinepulse_api.metrics import HTTP
from cinepulse_api.openapi import error_responses
from cinepulse_api.routes import emotions, movies, trending, users
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import add_security, build_access
from cinepulse_common.http_errors import add_validation_handler
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.openapi import customise_openapi, docs_routes
from cinepulse_common.read_limits import RATE_LIMITED, install_read_limits

log = get_logger(__name__)

#: Retry-After of a 503 when the database does not answer (seconds)
DB_RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return JSONResponse(
        {"detail": f"the database is unavailable ({type(exc).__name__}); retry later"},
        status_code=503,
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


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
    warehouse = Warehouse(
        settings.postgres,
        pool_timeout_s=settings.db_pool_timeout_s,
        readiness_timeout_s=settings.readiness_timeout_s,
    )
    archiver = Archiver(settings.archiver_url, settings.archiver_timeout_s, archiver_transport)
    access = build_access(settings.auth, service="api")
    if clock is not None:
        access.clock = clock
    open_aggregates = not access.enabled or access.public_aggregates

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # not waiting for a connection: a database that is down makes /readyz fail, and
        # the pool keeps trying in the background
        await warehouse.pool.open(wait=False)
        log.info(
            "api ready",
            version=__version__,
            pool_max=settings.postgres.pool_max_size,
            auth=access.enabled,
            public_aggregates=access.public_aggregates,
            clients=len(access.keys.clients) if access.keys else 0,
        )
        try:
            async with archiver.open():
                yield
        finally:
            archiver.closed()
            await warehouse.pool.close()

    app = FastAPI(
        title="Cinepulse API",
        version="1",
        summary="Top movies, movie details, user statistics, emotion trends and trending.",
        description=__doc__,
        lifespan=lifespan,
        **docs_routes(settings),
    )
    app.state.settings = settings
    app.state.today = today or (lambda: datetime.now(UTC).date())
    app.state.access = access
    app.state.warehouse = warehouse
    app.state.archiver = archiver
    app.state.answer_cache = AnswerCache[Answer](
        settings.answer_cache_s, settings.answer_cache_entries, cache_clock
    )
    app.state.trending_cache = AnswerCache[Answer](
        settings.trending_cache_s, trending.TRENDING_LIMIT_MAX, cache_clock
    )
    app.state.cache_policy = CachePolicy.of(
        settings.cache_max_age_s,
        shared=open_aggregates,
        key_header=settings.auth.header,
        token_header=settings.auth.user_token_header,
    )

    add_validation_handler(app)
    # a pool that cannot hand out a connection in time, a statement timeout
    # (QueryCanceled), a lost connection: the caller may retry, nothing is wrong with it
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)

    # every /api/ request counts against its caller's rate limit before anything else (the
    # access checks, the answer caches): the limit is on requests, not on queries
    install_read_limits(app, settings.rate_limit, access)
    limited = (429,) if settings.rate_limit.active else ()
    # the errors every operation of a router may give under these settings
    aggregate_errors = error_responses(*limited, *(() if open_aggregates else (401,)))
    user_errors = error_responses(*limited, *((401, 403) if access.enabled else ()))
    for router, errors in (
        (movies.router, aggregate_errors),
        (users.router, user_errors),
        (emotions.router, aggregate_errors),
        (trending.router, aggregate_errors),
    ):
        app.include_router(router, responses=errors, dependencies=[RATE_LIMITED])

    add_health_routes(
        app,
        {"postgres": warehouse.check},
        timeout_s=settings.readiness_timeout_s,
        metrics=not settings.metrics_port,
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=HTTP)

    if access.enabled:
        customise_openapi(app, lambda spec: add_security(spec, access, users.USER_PATHS))
    return app
