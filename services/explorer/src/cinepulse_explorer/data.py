"""What the explorer shows, as DataFrames: the SQL over the ``analytics`` views (the only
thing the read-only role may read, migration 0008) and pure functions that shape its rows.

``fetch_*`` run one statement on a connection; the other functions never touch a database,
so the shaping is unit-tested on hand-made frames. Nothing here imports Streamlit.
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

Bucket = Literal["day", "week", "month"]
BUCKETS: tuple[Bucket, ...] = ("day", "week", "month")

# --- SQL (analytics views only) -------------------------------------------------------

#: first and last day with any aggregate row
DATE_SPAN = """
SELECT min(lo) AS first_day, max(hi) AS last_day FROM (
    SELECT min(date) AS lo, max(date) AS hi FROM analytics.daily_activity
    UNION ALL SELECT min(date), max(date) FROM analytics.movie_daily
    UNION ALL SELECT min(date), max(date) FROM analytics.emotion_daily
) AS spans
"""

GENRES = "SELECT DISTINCT unnest(genres) AS genre FROM analytics.movies ORDER BY 1"

#: every movie's totals in the window, known to ``analytics.movies`` or not: the ratings of
#: unknown movies still count in the window's mean (the Bayesian prior), as in the api
MOVIE_WINDOW = """
SELECT d.movie_id, (m.movie_id IS NOT NULL) AS known, m.title, m.release_year, m.genres,
       sum(d.ratings)::bigint AS ratings, sum(d.rating_sum)::float8 AS rating_sum,
       sum(d.watches)::bigint AS watches, sum(d.comments)::bigint AS comments,
       sum(d.clicks)::bigint AS clicks
FROM analytics.movie_daily AS d
LEFT JOIN analytics.movies AS m ON m.movie_id = d.movie_id
WHERE (%(date_from)s::date IS NULL OR d.date >= %(date_from)s::date)
  AND d.date <= %(date_to)s::date
GROUP BY d.movie_id, m.movie_id, m.title, m.release_year, m.genres
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


def fetch_movie_window(
    conn: psycopg.Connection[Any], date_from: date | None, date_to: date
) -> pd.DataFrame:
    return read_frame(conn, MOVIE_WINDOW, {"date_from": date_from, "date_to": date_to})


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


def rank_top_movies(
    per_movie: pd.DataFrame,
    *,
    genre: str | None = None,
    min_votes: int = 1,
    prior_votes: float = 10.0,
    limit: int = 20,
) -> pd.DataFrame:
    """Movies ranked by the Bayesian average of their ratings in the window, best first.

    ``score = v/(v+m)*R + m/(v+m)*C``: v the movie's ratings, R their mean, C the mean of
    every rating of the window (all movies, whatever the genre filter) and m
    ``prior_votes``; a movie with few ratings is pulled towards C. Ties: more ratings, then
    the lower id. Only movies known to ``analytics.movies`` with at least ``min_votes``
    (and at least one) ratings are ranked.
    """
    rated = per_movie[per_movie["ratings"] > 0]
    if rated.empty:
        return pd.DataFrame(columns=TOP_COLUMNS)
    c = float(rated["rating_sum"].sum()) / float(rated["ratings"].sum())
    keep = rated["known"].astype(bool) & (rated["ratings"] >= max(min_votes, 1))
    if genre is not None:
        keep &= rated["genres"].map(lambda g: g is not None and genre in list(g))
    top = rated[keep].copy()
    if top.empty:
        return pd.DataFrame(columns=TOP_COLUMNS)
    v = top["ratings"].astype(float)
    top["mean_rating"] = top["rating_sum"] / v
    top["score"] = v / (v + prior_votes) * top["mean_rating"] + prior_votes / (v + prior_votes) * c
    top = top.sort_values(["score", "ratings", "movie_id"], ascending=[False, False, True])
    top = top.head(limit).reset_index(drop=True)
    top["rank"] = range(1, len(top) + 1)
    top["genres"] = top["genres"].map(lambda g: ", ".join(g) if g is not None else "")
    return top[TOP_COLUMNS]


def window_mean_rating(per_movie: pd.DataFrame) -> float | None:
    """C of :func:`rank_top_movies`: the mean of every rating in the window."""
    ratings = float(per_movie["ratings"].sum()) if not per_movie.empty else 0.0
    return float(per_movie["rating_sum"].sum()) / ratings if ratings else None


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
