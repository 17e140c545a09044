"""``/api/top_movies`` and ``/api/movies/{movie_id}``: aggregate reads of the warehouse, public
or keyed, each answer kept in the answer cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from cinepulse_api.adapters import queries
from cinepulse_api.adapters.warehouse import window_bounds
from cinepulse_api.cache import Answer, answer_key, cached_answer, fold_name
from cinepulse_api.deps import (
    AggregateReader,
    AnswerCacheDep,
    CachePolicyDep,
    SettingsDep,
    TodayDep,
    WarehouseDep,
)
from cinepulse_api.openapi import responses
from cinepulse_api.routes.params import MAX_BIGINT, NoNul
from cinepulse_api.schemas import Movie, TopMovie, TopMovies, Window

router = APIRouter(tags=["movies"], dependencies=[AggregateReader])


@router.get("/api/top_movies", response_model=TopMovies, responses=responses(404, 503))
async def top_movies(
    request: Request,
    warehouse: WarehouseDep,
    cache: AnswerCacheDep,
    policy: CachePolicyDep,
    settings: SettingsDep,
    today: TodayDep,
    window: Annotated[Window, Query(description="day, week (7 days), month (30), all")] = "week",
    genre: Annotated[str | None, Query(min_length=1, max_length=100), NoNul] = None,
    min_votes: Annotated[
        int, Query(ge=1, le=1_000_000_000, description="fewest ratings in the window")
    ] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Movies ranked by the Bayesian average of their ratings in the window."""
    date_from, date_to = window_bounds(window, today)
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
        async with warehouse.connection() as conn:
            await warehouse.genre_ids(genre, conn)  # an unknown genre: 404
            rows = await warehouse.fetch(
                queries.TOP_MOVIES,
                {
                    "date_from": date_from,
                    "date_to": date_to,
                    "m": settings.bayes_prior_votes,
                    "min_votes": min_votes,
                    "genre": genre,
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
    return cached_answer(request, answer.echoing(genre=genre), policy.aggregate)


@router.get("/api/movies/{movie_id}", response_model=Movie, responses=responses(404, 503))
async def movie(
    request: Request,
    warehouse: WarehouseDep,
    cache: AnswerCacheDep,
    policy: CachePolicyDep,
    movie_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
) -> Response:
    """One movie (``dim_movie``), its genres and its all-time aggregates."""
    key = answer_key("movie", movie_id=movie_id)

    async def compute() -> Answer:
        params = {"movie_id": movie_id}
        async with warehouse.connection() as conn:
            rows = await warehouse.fetch(queries.MOVIE, params, conn)
            if not rows:
                raise HTTPException(404, f"unknown movie {movie_id}")
            genres = await warehouse.fetch(queries.MOVIE_GENRES, params, conn)
            [totals] = await warehouse.fetch(queries.MOVIE_TOTALS, params, conn)
        return Answer.of(Movie.model_validate({**rows[0], "genres": genres, "totals": totals}))

    answer = await cache.get_or_compute(key, compute)
    return cached_answer(request, answer.encoded, policy.aggregate)
