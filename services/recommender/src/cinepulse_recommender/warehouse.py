"""What the recommender reads from the star schema (read-only): the events of the facts,
the catalogue (``dim_movie``) with its tags (genre, keyword and company bridges), and a
popularity table for serving before any model is published."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from cinepulse_recommender.interactions import Events

#: every fact that says something about a user and a movie, in one shape; ``at`` in Unix
#: seconds. ``%(since)s``/``%(until)s`` bound occurred_at (half open).
EVENTS = """
SELECT user_id, movie_id, 'rate' AS kind, rating::float8 AS value, false AS completed,
       extract(epoch FROM occurred_at)::float8 AS at
  FROM fact_rating WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
UNION ALL
SELECT user_id, movie_id, 'watch', completion_ratio::float8, completed,
       extract(epoch FROM occurred_at)::float8
  FROM fact_watch WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
UNION ALL
SELECT user_id, movie_id, 'comment', NULL, false, extract(epoch FROM occurred_at)::float8
  FROM fact_comment WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
UNION ALL
SELECT user_id, movie_id, 'click', NULL, false, extract(epoch FROM occurred_at)::float8
  FROM fact_click WHERE occurred_at >= %(since)s AND occurred_at < %(until)s
"""

CATALOGUE = "SELECT movie_id, title FROM dim_movie ORDER BY movie_id"

#: ``(movie_id, tag)``; the feature kinds asked for in ``%(kinds)s``
TAGS = """
SELECT b.movie_id, 'genre:' || g.name FROM bridge_movie_genre AS b
  JOIN dim_genre AS g USING (genre_id) WHERE 'genres' = ANY(%(kinds)s)
UNION ALL
SELECT movie_id, 'keyword:' || keyword_id FROM bridge_movie_keyword
  WHERE 'keywords' = ANY(%(kinds)s)
UNION ALL
SELECT movie_id, 'company:' || company_id FROM bridge_movie_company
  WHERE 'companies' = ANY(%(kinds)s)
"""

GENRES = """
SELECT b.movie_id, g.name FROM bridge_movie_genre AS b JOIN dim_genre AS g USING (genre_id)
ORDER BY b.movie_id, g.name
"""

#: distinct users per movie over every fact since ``%(since)s``, with the movie's title
POPULARITY = """
WITH users AS (
    SELECT movie_id, user_id FROM fact_rating WHERE occurred_at >= %(since)s
    UNION SELECT movie_id, user_id FROM fact_watch WHERE occurred_at >= %(since)s
    UNION SELECT movie_id, user_id FROM fact_comment WHERE occurred_at >= %(since)s
    UNION SELECT movie_id, user_id FROM fact_click WHERE occurred_at >= %(since)s
)
SELECT u.movie_id, count(*)::float8 AS users, m.title
FROM users AS u LEFT JOIN dim_movie AS m USING (movie_id)
GROUP BY u.movie_id, m.title
ORDER BY u.movie_id
"""


@dataclass
class Catalogue:
    """Every movie of ``dim_movie`` (sorted ids), its title and genres, and its tags."""

    movie_ids: npt.NDArray[np.int64]
    titles: dict[int, str]
    genres: dict[int, list[str]]
    tags: list[tuple[int, str]]


@dataclass
class WarehouseData:
    events: Events
    catalogue: Catalogue
    since: datetime
    until: datetime


def read_events(cur: psycopg.Cursor[Any], since: datetime, until: datetime) -> Events:
    cur.execute(EVENTS, {"since": since, "until": until})
    users: list[str] = []
    movies: list[int] = []
    kinds: list[str] = []
    values: list[float] = []
    completed: list[bool] = []
    at: list[float] = []
    while rows := cur.fetchmany(50_000):
        for u, m, k, v, c, t in rows:
            users.append(u)
            movies.append(m)
            kinds.append(k)
            values.append(np.nan if v is None else v)
            completed.append(bool(c))
            at.append(t)
    return Events(
        user_id=np.array(users, dtype=np.str_),
        movie_id=np.array(movies, dtype=np.int64),
        kind=np.array(kinds, dtype=np.str_),
        value=np.array(values, dtype=np.float64),
        completed=np.array(completed, dtype=np.bool_),
        at=np.array(at, dtype=np.float64),
    )


def read_catalogue(cur: psycopg.Cursor[Any], kinds: list[str]) -> Catalogue:
    cur.execute(CATALOGUE)
    titles = {int(m): t for m, t in cur.fetchall()}
    cur.execute(GENRES)
    genres: dict[int, list[str]] = {}
    for m, g in cur.fetchall():
        genres.setdefault(int(m), []).append(g)
    cur.execute(TAGS, {"kinds": kinds})
    tags = [(int(m), t) for m, t in cur.fetchall()]
    return Catalogue(
        movie_ids=np.array(sorted(titles), dtype=np.int64), titles=titles, genres=genres, tags=tags
    )


def read_training_data(
    conn: psycopg.Connection[Any], since: datetime, until: datetime, kinds: list[str]
) -> WarehouseData:
    """Events in ``[since, until)`` and the catalogue, from one snapshot (a repeatable-read,
    read-only transaction: facts and dimensions agree)."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction(), conn.cursor() as cur:
        events = read_events(cur, since, until)
        catalogue = read_catalogue(cur, kinds)
    return WarehouseData(events, catalogue, since, until)
