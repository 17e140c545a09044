"""``/api/trending``: the archiver's live counters with the warehouse's titles (an aggregate
read, public or keyed, kept a few seconds per ``limit``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from cinepulse_api.adapters import queries
from cinepulse_api.cache import Answer, answer_key, cached_answer
from cinepulse_api.deps import (
    AggregateReader,
    ArchiverDep,
    CachePolicyDep,
    TrendingCacheDep,
    WarehouseDep,
)
from cinepulse_api.openapi import responses
from cinepulse_api.routes.params import MAX_BIGINT
from cinepulse_api.schemas import Trending, TrendingMovie

#: the most movies /api/trending answers (so also the most answers its cache holds: one per limit)
TRENDING_LIMIT_MAX = 100

router = APIRouter(tags=["movies"], dependencies=[AggregateReader])


@router.get("/api/trending", response_model=Trending, responses=responses(502, 503))
async def trending(
    request: Request,
    archiver: ArchiverDep,
    warehouse: WarehouseDep,
    cache: TrendingCacheDep,
    policy: CachePolicyDep,
    limit: Annotated[int, Query(ge=1, le=TRENDING_LIMIT_MAX)] = 10,
) -> Response:
    """The movies with the most events in the last minutes (live, from the archiver),
    with their titles; ``title`` is null for a movie not yet in the warehouse. 503 with
    ``Retry-After`` when the archiver is down or slow."""

    async def compute() -> Answer:
        counts = await archiver.trending(limit)
        movies = counts.movies[:limit]
        titles: dict[int, str] = {}
        if movies:
            ids = [m.movie_id for m in movies if 0 < m.movie_id <= MAX_BIGINT]
            rows = await warehouse.fetch(queries.MOVIE_TITLES, {"ids": ids})
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

    answer = await cache.get_or_compute(answer_key("trending", limit=limit), compute)
    return cached_answer(request, answer.encoded, policy.trending)
