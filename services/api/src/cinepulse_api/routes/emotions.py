"""``/api/emotion_trends``: comments per emotion and mean sentiment per bucket (an aggregate
read, public or keyed, kept in the answer cache)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from cinepulse_api.adapters import queries
from cinepulse_api.cache import Answer, answer_key, cached_answer, fold_name
from cinepulse_api.deps import AggregateReader, AnswerCacheDep, CachePolicyDep, WarehouseDep
from cinepulse_api.openapi import responses
from cinepulse_api.routes.params import MAX_BIGINT, NoNul
from cinepulse_api.schemas import Bucket, EmotionBucket, EmotionCount, EmotionTrends

router = APIRouter(tags=["emotions"], dependencies=[AggregateReader])


@router.get("/api/emotion_trends", response_model=EmotionTrends, responses=responses(404, 503))
async def emotion_trends(
    request: Request,
    warehouse: WarehouseDep,
    cache: AnswerCacheDep,
    policy: CachePolicyDep,
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
        async with warehouse.connection() as conn:
            genre_ids = await warehouse.genre_ids(genre, conn)
            rows = await warehouse.fetch(
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
    return cached_answer(request, answer.echoing(genre=genre), policy.aggregate)
