"""What the explorer shows, as DataFrames: the SQL over the ``analytics`` views (the only
thing the read-only role may read, migration 0008) and its top-movies ranking functions
(migration 0010), and pure functions that shape its rows.

``fetch_*`` run their statements on a connection; the other functions never touch a
database, so the shaping is unit-tested on hand-made frames. Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import pandas as pd
import psycopg

#: days in each top-movies window, the last day included (``all time``: no bound), as the
#: api's ``/api/top_movies`` windows
WINDOW_DAYS: dict[str, int | None] = {"day": 1, "week": 7, "month": 30, "all time": None}

#: additive daily counts of ``analytics.daily_activity`` and ``analytics.genre_daily``
ACTIVITY_METRICS = ("events", "users", "movies")
GENRE_METRICS = ("events", "ratings", "watches", "comments", "clicks")

#: the top movies table's columns, in order
TOP_COLUMNS = [
    "rank",
    "movie_id",
    "title",
    "release_year",
    "genres",
    "ratings",
    "mean_rating",
    "score",
    "watches",
    "comments",
    "clicks",
]

Bucket = Literal["day", "week", "month"]
BUCKETS: tuple[Bucket, ...] = ("day", "week", "month")

# --- SQL (analytics views and functions only) -----------------------------------------

#: first and last day with any aggregate row
DATE_SPAN = """
SELECT min(lo) AS first_day, max(hi) AS last_day FROM (
    SELECT min(date) AS lo, max(date) AS hi FROM analytics.daily_activity
    UNION ALL SELECT min(date), max(date) FROM analytics.movie_daily
    UNION ALL SELECT min(date), max(date) FROM analytics.emotion_daily
) AS spans
"""

GENRES = "SELECT DISTINCT unnest(genres) AS genre FROM analytics.movies ORDER BY 1"

#: the window's top movies, ranked by ``analytics.bayesian_top_movies`` (migration 0010: the
#: ranking's only definition, the one ``/api/top_movies`` calls too), with their year and
#: genres, their activity in the window and C (``window_mean``, the same on every row)
TOP_MOVIES = """
SELECT t.rank, t.movie_id, t.title, m.release_year, array_to_string(m.genres, ', ') AS genres,
       t.ratings, t.mean_rating, t.score, x.watches, x.comments, x.clicks, t.window_mean
FROM analytics.bayesian_top_movies(
    %(date_from)s::date, %(date_to)s::date, %(prior_votes)s::float8, %(min_votes)s::bigint,
    %(genre)s::text) AS t
JOIN analytics.movies AS m ON m.movie_id = t.movie_id
CROSS JOIN LATERAL (
    SELECT sum(d.watches)::bigint AS watches, sum(d.comments)::bigint AS comments,
           sum(d.clicks)::bigint AS clicks
    FROM analytics.movie_daily AS d
    WHERE d.movie_id = t.movie_id
      AND d.date BETWEEN coalesce(%(date_from)s::date, '-infinity') AND %(date_to)s::date
) AS x
WHERE t.rank <= %(limit)s
ORDER BY t.rank
"""

#: C alone: the mean of every rating in the window (NULL: no rating), as the ranking uses it
WINDOW_MEAN = """
SELECT (SELECT window_mean FROM analytics.movie_window(%(date_from)s::date, %(date_to)s::date)
        LIMIT 1) AS window_mean
"""

DAILY_ACTIVITY = """
SELECT date, event_type, events, users, movies FROM analytics.daily_activity
WHERE date BETWEEN %(date_from)s AND %(date_to)s
ORDER BY date, event_type
"""

GENRE_DAILY = """
SELECT date, genre, events, ratings, watches, comments, clicks FROM analytics.genre_daily
WHERE date BETWEEN %(date_from)s AND %(date_to)s
ORDER BY date, genre
"""

#: movies with comments, most commented first (the emotion page's movie choice)
COMMENTED_MOVIES = """
SELECT movie_id, coalesce(title, '#' || movie_id) AS title, sum(comments)::bigint AS comments
FROM analytics.emotion_daily
GROUP BY movie_id, title
ORDER BY comments DESC, movie_id
LIMIT %(limit)s
"""

#: comments and sentiment sum per day and emotion, for one movie, one genre or everything
EMOTION_DAILY = """
SELECT e.date, e.emotion, sum(e.comments)::bigint AS comments,
       sum(e.mean_sentiment * e.comments)::float8 AS sentiment_sum
FROM analytics.emotion_daily AS e
WHERE e.date BETWEEN %(date_from)s AND %(date_to)s
  AND (%(movie_id)s::bigint IS NULL OR e.movie_id = %(movie_id)s::bigint)
  AND (%(genre)s::text IS NULL OR EXISTS (
      SELECT 1 FROM analytics.movies AS m
      WHERE m.movie_id = e.movie_id AND %(genre)s::text = ANY(m.genres)))
GROUP BY e.date, e.emotion
ORDER BY e.date, e.emotion
"""

USER_ACTIVITY = """
SELECT user_id, first_seen_at, last_seen_at, watches, ratings, mean_rating, comments, clicks
FROM analytics.user_activity WHERE user_id = %(user_id)s
"""

RECENT_USERS = """
SELECT user_id FROM analytics.user_activity
ORDER BY last_seen_at DESC NULLS LAST, user_id LIMIT %(limit)s
"""

MOVIE_TITLES = """
SELECT movie_id, title FROM analytics.movies WHERE movie_id = ANY(%(ids)s::bigint[])
"""


def read_frame(
    conn: psycopg.Connection[Any], query: str, params: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """The rows of one statement, with its column names (also when there is no row)."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)


# --- fetchers -------------------------------------------------------------------------


def fetch_date_span(conn: psycopg.Connection[Any]) -> tuple[date, date] | None:
    """``(first, last)`` day with data, or None when the aggregates are empty."""
    row = read_frame(conn, DATE_SPAN).iloc[0]
    if pd.isna(row["first_day"]):
        return None
    return row["first_day"], row["last_day"]


def fetch_genres(conn: psycopg.Connection[Any]) -> list[str]:
    return [str(g) for g in read_frame(conn, GENRES)["genre"]]


@dataclass(frozen=True)
class TopMovies:
    #: :data:`TOP_COLUMNS`, best first
    movies: pd.DataFrame
    #: C: the mean of every rating in the window (all movies); None when it has none
    window_mean: float | None


def fetch_top_movies(
    conn: psycopg.Connection[Any],
    date_from: date | None,
    date_to: date,
    *,
    genre: str | None = None,
    min_votes: int = 1,
    prior_votes: float = 10.0,
    limit: int = 20,
) -> TopMovies:
    """The ``limit`` best movies of the window (first day None: all time) by the Bayesian
    average, with at least ``min_votes`` ratings, of ``genre`` when given; C comes with them
    (a second statement only when no movie is ranked)."""
    window = {"date_from": date_from, "date_to": date_to}
    params = {
        **window,
        "genre": genre,
        "min_votes": min_votes,
        "prior_votes": prior_votes,
        "limit": limit,
    }
    rows = read_frame(conn, TOP_MOVIES, params)
    if rows.empty:
        c = read_frame(conn, WINDOW_MEAN, window)["window_mean"].iloc[0]
    else:
        c = rows["window_mean"].iloc[0]
    return TopMovies(rows[TOP_COLUMNS], None if pd.isna(c) else float(c))


def fetch_daily_activity(
    conn: psycopg.Connection[Any], date_from: date, date_to: date
) -> pd.DataFrame:
    return read_frame(conn, DAILY_ACTIVITY, {"date_from": date_from, "date_to": date_to})


def fetch_genre_daily(
    conn: psycopg.Connection[Any], date_from: date, date_to: date
) -> pd.DataFrame:
    return read_frame(conn, GENRE_DAILY, {"date_from": date_from, "date_to": date_to})


def fetch_commented_movies(conn: psycopg.Connection[Any], limit: int = 200) -> pd.DataFrame:
    return read_frame(conn, COMMENTED_MOVIES, {"limit": limit})


def fetch_emotion_daily(
    conn: psycopg.Connection[Any],
    date_from: date,
    date_to: date,
    *,
    movie_id: int | None = None,
    genre: str | None = None,
) -> pd.DataFrame:
    params = {"date_from": date_from, "date_to": date_to, "movie_id": movie_id, "genre": genre}
    return read_frame(conn, EMOTION_DAILY, params)


def fetch_user_activity(conn: psycopg.Connection[Any], user_id: str) -> dict[str, Any] | None:
    """The user's row of ``analytics.user_activity``, or None for an unknown user."""
    rows = read_frame(conn, USER_ACTIVITY, {"user_id": user_id})
    return None if rows.empty else dict(rows.iloc[0])


def fetch_recent_users(conn: psycopg.Connection[Any], limit: int = 50) -> list[str]:
    return [str(u) for u in read_frame(conn, RECENT_USERS, {"limit": limit})["user_id"]]


def fetch_movie_titles(conn: psycopg.Connection[Any], ids: Sequence[int]) -> dict[int, str]:
    rows = read_frame(conn, MOVIE_TITLES, {"ids": list(ids)})
    return {int(i): str(t) for i, t in zip(rows["movie_id"], rows["title"], strict=True)}


# --- shaping (pure) -------------------------------------------------------------------


def window_bounds(window: str, last_day: date) -> tuple[date | None, date]:
    """``(first, last)`` day of the window ending ``last_day``; first is None for all time."""
    days = WINDOW_DAYS[window]
    return (None if days is None else last_day - timedelta(days=days - 1)), last_day


def daily_pivot(
    rows: pd.DataFrame,
    *,
    series: str,
    metric: str,
    date_from: date,
    date_to: date,
    keep: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One column per value of ``series`` (its ``metric`` summed per day), one row per day
    from ``date_from`` to ``date_to``: a day without a row is 0, so a chart shows the gap.
    ``keep`` limits (and orders) the columns; otherwise the largest totals come first."""
    days = pd.date_range(date_from, date_to, freq="D", name="date")
    if rows.empty:
        return pd.DataFrame(index=days, columns=list(keep or []), dtype="int64").fillna(0)
    frame = rows.assign(date=pd.to_datetime(rows["date"]))
    wide = frame.pivot_table(
        index="date", columns=series, values=metric, aggfunc="sum", fill_value=0
    )
    wide = wide.reindex(days, fill_value=0)
    order = list(keep) if keep is not None else list(wide.sum().sort_values(ascending=False).index)
    wide = wide.reindex(columns=order, fill_value=0)
    wide.columns.name = None
    return wide.astype("int64")


def top_series(rows: pd.DataFrame, *, series: str, metric: str, n: int) -> list[str]:
    """The ``n`` values of ``series`` with the largest ``metric`` totals (ties by name)."""
    if rows.empty:
        return []
    totals = rows.groupby(series)[metric].sum().reset_index()
    totals = totals.sort_values([metric, series], ascending=[False, True])
    return [str(s) for s in totals[series].head(n)]


def bucket_start(days: pd.Series, bucket: Bucket) -> pd.Series:
    """The first day of each day's bucket: itself, its ISO week's Monday, its month's 1st."""
    stamps = pd.to_datetime(days)
    if bucket == "day":
        return stamps
    if bucket == "week":
        return stamps - pd.to_timedelta(stamps.dt.weekday, unit="D")
    if bucket == "month":
        return stamps.dt.to_period("M").dt.start_time
    raise ValueError(f"unknown bucket {bucket!r}; expected one of {', '.join(BUCKETS)}")


@dataclass(frozen=True)
class EmotionTrends:
    #: comments per bucket (rows, ``bucket_start``) and emotion (columns, most frequent first)
    comments: pd.DataFrame
    #: per bucket: ``comments`` and ``mean_sentiment`` (weighted by comments)
    sentiment: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.comments.empty


def emotion_trends(rows: pd.DataFrame, bucket: Bucket) -> EmotionTrends:
    """Comments per emotion and the mean sentiment, per ``bucket``, from rows of
    (date, emotion, comments, sentiment_sum)."""
    if rows.empty:
        index = pd.DatetimeIndex([], name="bucket_start")
        return EmotionTrends(
            pd.DataFrame(index=index),
            pd.DataFrame({"comments": [], "mean_sentiment": []}, index=index),
        )
    frame = rows.assign(bucket_start=bucket_start(rows["date"], bucket))
    comments = frame.pivot_table(
        index="bucket_start", columns="emotion", values="comments", aggfunc="sum", fill_value=0
    )
    comments = comments[comments.sum().sort_values(ascending=False, kind="stable").index]
    comments.columns.name = None
    totals = frame.groupby("bucket_start")[["comments", "sentiment_sum"]].sum()
    sentiment = pd.DataFrame(
        {
            "comments": totals["comments"].astype("int64"),
            "mean_sentiment": totals["sentiment_sum"] / totals["comments"],
        }
    )
    return EmotionTrends(comments.astype("int64"), sentiment)
