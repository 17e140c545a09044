"""Migration 0010: ``analytics.bayesian_top_movies`` (and ``analytics.movie_window``), the one
definition of the top-movies ranking, against the real PostgreSQL.

Before it, ``/api/top_movies`` and the explorer each computed the ranking: the api's SQL over
``agg_movie_daily`` and the explorer's pandas over ``analytics.movie_daily``. Both are kept
here, verbatim, as references (:data:`OLD_API_TOP_MOVIES`, :func:`old_explorer_top`): on the
data of ``test_api`` plus a seeded random warehouse (unknown movies, ties, several genres,
days in and out of every window, a day after today), the api's query and the explorer's
fetcher now give the same movies, in the same order, with the same numbers, for every window,
genre, ``min_votes``, m and page.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg.rows import dict_row

from cinepulse_api.adapters import queries
from cinepulse_api.adapters.warehouse import window_bounds
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_common.warehouse import load_movies
from cinepulse_explorer import data
from tests.integration.test_api import ACTION, COMEDY, DRAMA, TODAY, _agg, _movie, fill_warehouse

pytestmark = pytest.mark.integration

# --- the two implementations the function replaced, as they were -------------------------

#: ``queries.TOP_MOVIES`` before migration 0010 (window as date keys, genre as the ids of
#: ``queries.GENRE_IDS``)
OLD_API_TOP_MOVIES = """
WITH win AS (
    SELECT movie_id, sum(ratings)::bigint AS v, sum(rating_sum)::float8 AS s
    FROM agg_movie_daily
    WHERE date_key BETWEEN %(date_from)s AND %(date_to)s
    GROUP BY movie_id
    HAVING sum(ratings) > 0
), prior AS (
    SELECT sum(s) / sum(v) AS c FROM win
), ranked AS (
    SELECT w.movie_id, m.title, m.release_date, w.v AS ratings, w.s / w.v AS mean_rating,
           w.v / (w.v + %(m)s::float8) * (w.s / w.v)
             + %(m)s::float8 / (w.v + %(m)s::float8) * p.c AS score
    FROM win AS w
    CROSS JOIN prior AS p
    JOIN dim_movie AS m ON m.movie_id = w.movie_id
    WHERE w.v >= %(min_votes)s
      AND (%(genre_ids)s::int[] IS NULL OR EXISTS (
          SELECT 1 FROM bridge_movie_genre AS b
          WHERE b.movie_id = w.movie_id AND b.genre_id = ANY(%(genre_ids)s::int[])))
)
SELECT t.total, (SELECT c FROM prior)::float8 AS c,
       r.movie_id, r.title, r.release_date, r.ratings, r.mean_rating, r.score
FROM (SELECT count(*) AS total FROM ranked) AS t
LEFT JOIN LATERAL (
    SELECT * FROM ranked
    ORDER BY score DESC, ratings DESC, movie_id
    LIMIT %(limit)s OFFSET %(offset)s
) AS r ON true
"""

#: the explorer's ``MOVIE_WINDOW`` before migration 0010
OLD_EXPLORER_MOVIE_WINDOW = """
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


def old_explorer_top(
    per_movie: pd.DataFrame,
    *,
    genre: str | None = None,
    min_votes: int = 1,
    prior_votes: float = 10.0,
    limit: int = 20,
) -> tuple[pd.DataFrame, float | None]:
    """The explorer's ``rank_top_movies`` and ``window_mean_rating`` before migration 0010."""
    ratings = float(per_movie["ratings"].sum()) if not per_movie.empty else 0.0
    window_mean = float(per_movie["rating_sum"].sum()) / ratings if ratings else None
    rated = per_movie[per_movie["ratings"] > 0]
    if rated.empty:
        return pd.DataFrame(columns=data.TOP_COLUMNS), window_mean
    c = float(rated["rating_sum"].sum()) / float(rated["ratings"].sum())
    keep = rated["known"].astype(bool) & (rated["ratings"] >= max(min_votes, 1))
    if genre is not None:
        keep &= rated["genres"].map(lambda g: g is not None and genre in list(g))
    top = rated[keep].copy()
    if top.empty:
        return pd.DataFrame(columns=data.TOP_COLUMNS), window_mean
    v = top["ratings"].astype(float)
    top["mean_rating"] = top["rating_sum"] / v
    top["score"] = v / (v + prior_votes) * top["mean_rating"] + prior_votes / (v + prior_votes) * c
    top = top.sort_values(["score", "ratings", "movie_id"], ascending=[False, False, True])
    top = top.head(limit).reset_index(drop=True)
    top["rank"] = range(1, len(top) + 1)
    top["genres"] = top["genres"].map(lambda g: ", ".join(g) if g is not None else "")
    return top[data.TOP_COLUMNS], window_mean


# --- the data -------------------------------------------------------------------------------

WINDOWS = ("day", "week", "month", "all")
#: the explorer's name of each api window
EXPLORER_WINDOW = {"day": "day", "week": "week", "month": "month", "all": "all time"}
GENRES = (None, "Drama", "Comedy", "Action")
MIN_VOTES = (1, 3, 10)
PRIORS = (10.0, 0.0, 2.5)


def _seed_random(pg: PostgresSettings, seed: int = 20261207) -> None:
    """Movies 100-159 (150-159 unknown to ``dim_movie``) rated on days from 45 days before
    TODAY to one day after it; movies 160-163 tie (same ratings, same sum)."""
    rnd = random.Random(seed)
    genre_sets = [[DRAMA], [COMEDY], [ACTION], [DRAMA, COMEDY], [COMEDY, ACTION], []]
    with connect(pg) as conn:
        known = [*range(100, 150), *range(160, 164)]
        load_movies(
            conn,
            [_movie(i, f"Movie {i}", rnd.choice(genre_sets)) for i in known],
            source_flag="tmdb-fetcher",
        )
        for movie_id in range(100, 160):
            for back in rnd.sample(range(-1, 46), rnd.randint(1, 8)):
                votes = rnd.randint(0, 9)
                total = sum(rnd.randint(1, 10) / 2 for _ in range(votes))
                _agg(conn, TODAY - timedelta(days=back), movie_id, votes, total, clicks=1)
        for movie_id in range(160, 164):
            _agg(conn, TODAY, movie_id, ratings=4, rating_sum=16, watches=movie_id % 3)


@pytest.fixture
def warehouse(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection[Any]]:
    fill_warehouse(pg_settings)
    _seed_random(pg_settings)
    with connect(pg_settings, autocommit=True) as conn:
        yield conn


def _rows(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _key(d: date | None, default: int) -> int:
    return default if d is None else int(d.strftime("%Y%m%d"))


def _old_api(conn: psycopg.Connection[Any], window: str, **params: Any) -> list[dict]:
    date_from, date_to = window_bounds(window, TODAY)
    genre = params.pop("genre")
    genre_ids = None
    if genre is not None:
        genre_ids = [r["genre_id"] for r in _rows(conn, queries.GENRE_IDS.sql, {"genre": genre})]
    return _rows(
        conn,
        OLD_API_TOP_MOVIES,
        {
            "date_from": _key(date_from, 0),
            "date_to": _key(date_to, 99_991_231),
            "genre_ids": genre_ids,
            **params,
        },
    )


def _new_api(conn: psycopg.Connection[Any], window: str, **params: Any) -> list[dict]:
    date_from, date_to = window_bounds(window, TODAY)
    return _rows(
        conn, queries.TOP_MOVIES.sql, {"date_from": date_from, "date_to": date_to, **params}
    )


# --- the tests ------------------------------------------------------------------------------


def test_the_apis_answer_is_the_old_ones_for_every_parameter(
    warehouse: psycopg.Connection[Any],
) -> None:
    compared = ranked = 0
    for window in WINDOWS:
        for genre in (*GENRES, "drama"):
            for min_votes in MIN_VOTES:
                for m in PRIORS:
                    for limit, offset in ((20, 0), (5, 3), (100, 0), (3, 500)):
                        params = {
                            "genre": genre,
                            "min_votes": min_votes,
                            "m": m,
                            "limit": limit,
                            "offset": offset,
                        }
                        old = _old_api(warehouse, window, **params)
                        new = _new_api(warehouse, window, **params)
                        # same rows, same order, the same floats (not just close ones)
                        assert new == old, (window, params)
                        compared += 1
                        ranked += sum(r["movie_id"] is not None for r in new)
    assert compared == 4 * 5 * 3 * 3 * 4 and ranked > 5_000  # not a comparison of nothings


def test_the_explorers_top_movies_are_the_old_ones(warehouse: psycopg.Connection[Any]) -> None:
    last = TODAY + timedelta(days=1)  # the latest day with data
    for window in EXPLORER_WINDOW.values():
        date_from, date_to = data.window_bounds(window, last)
        per_movie = pd.DataFrame(
            _rows(
                warehouse, OLD_EXPLORER_MOVIE_WINDOW, {"date_from": date_from, "date_to": date_to}
            )
        )
        for genre in GENRES:
            for min_votes in MIN_VOTES:
                for m in PRIORS:
                    old, old_c = old_explorer_top(
                        per_movie, genre=genre, min_votes=min_votes, prior_votes=m
                    )
                    new = data.fetch_top_movies(
                        warehouse,
                        date_from,
                        date_to,
                        genre=genre,
                        min_votes=min_votes,
                        prior_votes=m,
                    )
                    case = (window, genre, min_votes, m)
                    assert new.window_mean == old_c, case
                    assert new.movies.to_dict("records") == old.to_dict("records"), case


def test_the_week_of_test_api_by_hand(pg_settings: PostgresSettings) -> None:
    """The numbers the api's and the explorer's tests state, straight from the function."""
    fill_warehouse(pg_settings)
    week = (TODAY - timedelta(days=6), TODAY)
    with connect(pg_settings) as conn:

        def top(*args: Any) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT rank, movie_id, ratings, mean_rating, window_mean, score"
                " FROM analytics.bayesian_top_movies(%s, %s, %s, %s, %s) ORDER BY rank",
                (*week, *args),
            ).fetchall()

        c = 130 / 32  # (10 + 90 + 30) / (2 + 20 + 10); movie 5 has clicks only
        rows = top(10, 1, None)
        assert [r[:3] for r in rows] == [(1, 2, 20), (2, 1, 2), (3, 3, 10)]
        assert [r[3] for r in rows] == [4.5, 5.0, 3.0] and {r[4] for r in rows} == {c}
        assert [r[5] for r in rows] == pytest.approx([4.3541667, 4.21875, 3.53125])
        # the prior is the whole window's whatever the filters: Beta's score does not move
        assert [(r[1], r[5]) for r in top(10, 1, "COMEDY")] == [(2, rows[0][5]), (3, rows[2][5])]
        assert [r[1] for r in top(10, 10, None)] == [2, 3]
        assert top(10, 1, "Western") == []
        assert top(0, 1, None)[0][1] == 1  # m = 0: the plain mean, Alpha's 5.0 first
        [(window_mean,)] = conn.execute(
            "SELECT DISTINCT window_mean FROM analytics.movie_window(%s, %s)", week
        ).fetchall()
        assert window_mean == c
        # movie 99 (a click) and 5 (clicks) are rated nowhere; Delta is 40 days back
        ids = conn.execute("SELECT movie_id FROM analytics.movie_window(NULL, NULL)").fetchall()
        assert sorted(i for (i,) in ids) == [1, 2, 3, 4]


def test_unknown_movies_count_in_the_prior_and_ties_go_to_more_ratings_then_the_lower_id(
    pg_settings: PostgresSettings,
) -> None:
    with connect(pg_settings) as conn:
        load_movies(
            conn,
            [_movie(i, f"M{i}", []) for i in (3, 5, 7)],
            source_flag="tmdb-fetcher",
        )
        _agg(conn, TODAY, 7, ratings=4, rating_sum=16)
        _agg(conn, TODAY, 3, ratings=4, rating_sum=16)
        _agg(conn, TODAY, 5, ratings=8, rating_sum=32)
        _agg(conn, TODAY, 99, ratings=30, rating_sum=30)  # not in dim_movie
        rows = conn.execute(
            "SELECT movie_id, window_mean, score"
            " FROM analytics.bayesian_top_movies(%s, %s, 0, 1) ORDER BY rank",
            (TODAY, TODAY),
        ).fetchall()
        c = (16 + 16 + 32 + 30) / (4 + 4 + 8 + 30)
        assert rows == [(5, c, 4.0), (3, c, 4.0), (7, c, 4.0)]  # every score is exactly 4.0
        none = conn.execute(
            "SELECT count(*), (SELECT window_mean FROM analytics.movie_window(%s, %s) LIMIT 1)"
            " FROM analytics.bayesian_top_movies(%s, %s, 10)",
            (TODAY - timedelta(days=1),) * 4,
        ).fetchone()
        assert none == (0, None)  # a window without a rating: nothing ranked, no C
