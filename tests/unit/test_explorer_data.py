"""The explorer's shaping functions on hand-made frames (no database, no Streamlit)."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

import pandas as pd
import pytest

from cinepulse_explorer import data

WINDOW_COLUMNS = [
    "movie_id",
    "known",
    "title",
    "release_year",
    "genres",
    "ratings",
    "rating_sum",
    "watches",
    "comments",
    "clicks",
]


def _movies(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """Rows of ``MOVIE_WINDOW``: (movie_id, title or None if unknown, genres, ratings, sum)."""
    return pd.DataFrame(
        [
            (i, title is not None, title, 1999 if title else None, genres, v, s, 0, 0, 0)
            for i, title, genres, v, s in rows
        ],
        columns=WINDOW_COLUMNS,
    )


# the week of tests/integration/test_api.py: Alpha 2 ratings (5.0), Beta 20 (4.5), Gamma 10
WEEK_ROWS = [
    (1, "Alpha", ["Drama"], 2, 10.0),
    (2, "Beta", ["Comedy", "Drama"], 20, 90.0),
    (3, "Gamma", ["Comedy"], 10, 30.0),
    (5, None, None, 0, 0.0),  # clicks only
]
WEEK = _movies(*WEEK_ROWS)


def test_window_bounds_end_at_the_last_day() -> None:
    last = date(2026, 11, 20)
    assert data.window_bounds("day", last) == (last, last)
    assert data.window_bounds("week", last) == (date(2026, 11, 14), last)
    assert data.window_bounds("month", last) == (date(2026, 10, 22), last)
    assert data.window_bounds("all time", last) == (None, last)


def test_top_movies_rank_by_the_bayesian_average_as_the_api_does() -> None:
    top = data.rank_top_movies(WEEK, prior_votes=10)
    assert list(top.columns) == data.TOP_COLUMNS
    # Alpha has the best mean (5.0) but only 2 ratings: the prior (C = 130/32) pulls it down
    assert list(top["title"]) == ["Beta", "Alpha", "Gamma"]
    assert list(top["rank"]) == [1, 2, 3]
    assert list(top["score"]) == pytest.approx([4.3541667, 4.21875, 3.53125])
    assert list(top["mean_rating"]) == pytest.approx([4.5, 5.0, 3.0])
    assert list(top["genres"]) == ["Comedy, Drama", "Drama", "Comedy"]
    assert data.window_mean_rating(WEEK) == pytest.approx(130 / 32)


def test_top_movies_filters_keep_the_windows_prior() -> None:
    comedy = data.rank_top_movies(WEEK, genre="Comedy")
    assert list(comedy["movie_id"]) == [2, 3]
    # C is still the whole window's mean, so Beta's score does not change with the filter
    assert comedy["score"].iloc[0] == pytest.approx(4.3541667)
    assert list(data.rank_top_movies(WEEK, min_votes=10)["movie_id"]) == [2, 3]
    assert list(data.rank_top_movies(WEEK, limit=1)["movie_id"]) == [2]
    assert data.rank_top_movies(WEEK, genre="Western").empty
    assert data.rank_top_movies(WEEK, prior_votes=0)["title"].iloc[0] == "Alpha"


def test_unknown_movies_count_in_the_prior_but_are_not_ranked() -> None:
    week = _movies(*WEEK_ROWS, (99, None, None, 30, 30.0))
    top = data.rank_top_movies(week)
    assert 99 not in set(top["movie_id"])
    c = 160 / 62
    assert top.set_index("movie_id").loc[1, "score"] == pytest.approx(2 / 12 * 5 + 10 / 12 * c)


def test_ties_go_to_more_ratings_then_the_lower_id() -> None:
    rows = _movies((7, "G", [], 4, 16.0), (3, "C", [], 4, 16.0), (5, "E", [], 8, 32.0))
    top = data.rank_top_movies(rows, prior_votes=0)  # every score is exactly 4.0
    assert list(top["movie_id"]) == [5, 3, 7]


def test_no_rating_means_no_top_movie() -> None:
    assert data.rank_top_movies(_movies((5, None, None, 0, 0.0))).empty
    assert data.rank_top_movies(_movies()).empty
    assert data.window_mean_rating(_movies()) is None


def _activity(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [(date.fromisoformat(d), t, n) for d, t, n in rows],
        columns=["date", "event_type", "events"],
    )


def _pivot(
    rows: pd.DataFrame, first: int, last: int, keep: list[str] | None = None
) -> pd.DataFrame:
    return data.daily_pivot(
        rows,
        series="event_type",
        metric="events",
        date_from=date(2026, 11, first),
        date_to=date(2026, 11, last),
        keep=keep,
    )


def test_daily_pivot_has_a_row_per_day_and_a_column_per_series() -> None:
    rows = _activity(
        ("2026-11-02", "watch", 3),
        ("2026-11-02", "rate", 5),
        ("2026-11-04", "watch", 4),
    )
    wide = _pivot(rows, 1, 4)
    assert list(wide.index) == list(pd.date_range("2026-11-01", "2026-11-04"))
    assert list(wide.columns) == ["watch", "rate"]  # the largest total first
    assert wide["watch"].tolist() == [0, 3, 0, 4]  # a day without rows is 0
    assert wide["rate"].tolist() == [0, 5, 0, 0]
    assert _pivot(rows, 2, 2, ["rate", "click"]).to_dict("list") == {"rate": [5], "click": [0]}
    # nothing at all: zeros, so a chart still spans the days asked
    assert _pivot(_activity(), 1, 2, ["watch"]).to_dict("list") == {"watch": [0, 0]}


def test_top_series_by_total() -> None:
    rows = pd.DataFrame(
        {"genre": ["Drama", "Comedy", "Drama", "Action", "Western"], "events": [1, 4, 3, 4, 1]}
    )
    assert data.top_series(rows, series="genre", metric="events", n=3) == [
        "Action",
        "Comedy",
        "Drama",
    ]
    assert data.top_series(rows.iloc[0:0], series="genre", metric="events", n=3) == []


def test_buckets_start_on_the_day_the_monday_and_the_first() -> None:
    days = pd.Series([date(2026, 11, 16), date(2026, 11, 22), date(2026, 11, 23)])
    assert data.bucket_start(days, "day").tolist() == list(pd.to_datetime(days))
    assert data.bucket_start(days, "week").dt.strftime("%F").tolist() == [
        "2026-11-16",
        "2026-11-16",
        "2026-11-23",
    ]
    assert set(data.bucket_start(days, "month").dt.strftime("%F")) == {"2026-11-01"}
    with pytest.raises(ValueError, match="unknown bucket 'year'"):
        data.bucket_start(days, cast(Any, "year"))


def _emotions(*rows: tuple[str, str, int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(date.fromisoformat(d), e, n, s) for d, e, n, s in rows],
        columns=["date", "emotion", "comments", "sentiment_sum"],
    )


def test_emotion_trends_count_per_bucket_and_weigh_the_sentiment() -> None:
    rows = _emotions(
        ("2026-11-16", "joy", 2, 1.6),  # a Monday
        ("2026-11-17", "sadness", 1, -0.5),
        ("2026-11-17", "joy", 1, 0.4),
        ("2026-11-24", "anger", 2, -1.0),
    )
    weekly = data.emotion_trends(rows, "week")
    assert not weekly.empty
    assert [d.strftime("%F") for d in weekly.comments.index] == ["2026-11-16", "2026-11-23"]
    assert list(weekly.comments.columns) == ["joy", "anger", "sadness"]  # most comments first
    assert weekly.comments.to_dict("list") == {"joy": [3, 0], "anger": [0, 2], "sadness": [1, 0]}
    assert weekly.sentiment["comments"].tolist() == [4, 2]
    # weighted by comments: (1.6 - 0.5 + 0.4) / 4, not the mean of the rows' means
    assert weekly.sentiment["mean_sentiment"].tolist() == pytest.approx([0.375, -0.5])
    daily = data.emotion_trends(rows, "day")
    assert len(daily.comments) == 3
    monthly = data.emotion_trends(rows, "month")
    assert monthly.comments.sum().sum() == 6 and len(monthly.comments) == 1


def test_emotion_trends_of_nothing_are_empty() -> None:
    trends = data.emotion_trends(_emotions().iloc[0:0], "week")
    assert trends.empty
    assert list(trends.sentiment.columns) == ["comments", "mean_sentiment"]
