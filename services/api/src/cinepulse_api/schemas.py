"""The api's answers and error bodies (pydantic), with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cinepulse_common import http_errors

Window = Literal["day", "week", "month", "all"]
Bucket = Literal["day", "week", "month"]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# --- error bodies ----------------------------------------------------------------------------
class ErrorMessage(BaseModel):
    """401, 403, 404, 502, 503: what went wrong, in one sentence."""

    model_config = _examples({"detail": "unknown movie 99"})
    detail: str


# the 422 body is every read API's (cinepulse_common.http_errors): re-exported here
FieldError = http_errors.FieldError
ValidationErrors = http_errors.ValidationErrors


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
