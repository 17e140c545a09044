"""The explorer's shaping functions on hand-made frames, and what its fetchers ask of a
stand-in connection (no database, no Streamlit)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest

from cinepulse_explorer import data

#: one canned answer: the statement's column names and rows
Answer = tuple[list[str], list[tuple[Any, ...]]]


class _Cursor:
    """Answers each statement with the connection's next canned answer."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.description: list[SimpleNamespace] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, params: Any = None) -> None:
        self.conn.ran.append((query, params))
        columns, self._rows = self.conn.answers.pop(0)
        self.description = [SimpleNamespace(name=c) for c in columns]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class _Conn:
    """Stands in for a psycopg connection: what it ran, (statement, params), in order."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.ran: list[tuple[str, Any]] = []

    def cursor(self) -> _Cursor:
        return _Cursor(self)


TOP_ROW_COLUMNS = [*data.TOP_COLUMNS, "window_mean"]


def test_window_bounds_end_at_the_last_day() -> None:
    last = date(2026, 11, 20)
    assert data.window_bounds("day", last) == (last, last)
    assert data.window_bounds("week", last) == (date(2026, 11, 14), last)
    assert data.window_bounds("month", last) == (date(2026, 10, 22), last)
    assert data.window_bounds("all time", last) == (None, last)


def test_top_movies_come_from_the_ranking_function_with_their_window_mean() -> None:
    # the ranking itself (analytics.bayesian_top_movies) is tested on PostgreSQL:
    # tests/integration/test_top_movies_ranking.py
    beta = (1, 2, "Beta", 1999, "Comedy, Drama", 20, 4.5, 4.3541667, 4, 1, 2, 130 / 32)
    conn = _Conn((TOP_ROW_COLUMNS, [beta]))
    top = data.fetch_top_movies(
        cast(Any, conn), date(2026, 11, 14), date(2026, 11, 20), genre="Comedy", min_votes=3
    )
    assert list(top.movies.columns) == data.TOP_COLUMNS
    assert top.movies.iloc[0].to_dict()["title"] == "Beta"
    assert top.window_mean == pytest.approx(130 / 32)
    [(query, params)] = conn.ran  # C came with the movies: one statement
    assert "analytics.bayesian_top_movies" in query
    assert params == {
        "date_from": date(2026, 11, 14),
        "date_to": date(2026, 11, 20),
        "genre": "Comedy",
        "min_votes": 3,
        "prior_votes": 10.0,
        "limit": 20,
    }


def test_no_top_movie_still_gives_the_windows_mean_or_none() -> None:
    conn = _Conn((TOP_ROW_COLUMNS, []), (["window_mean"], [(4.0,)]))
    top = data.fetch_top_movies(cast(Any, conn), None, date(2026, 11, 20), min_votes=1000)
    assert top.movies.empty and list(top.movies.columns) == data.TOP_COLUMNS
    assert top.window_mean == 4.0
    assert "analytics.movie_window" in conn.ran[1][0]
    assert conn.ran[1][1] == {"date_from": None, "date_to": date(2026, 11, 20)}
    nothing = _Conn((TOP_ROW_COLUMNS, []), (["window_mean"], [(None,)]))
    assert data.fetch_top_movies(cast(Any, nothing), None, date(2026, 11, 20)).window_mean is None


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
