"""The SQL behind each endpoint (read-only; every statement runs under the session's
``statement_timeout`` from :class:`~cinepulse_common.settings.PostgresSettings`). Each query
has a name: the ``query`` label of the database metrics."""

from __future__ import annotations

from typing import NamedTuple


class Query(NamedTuple):
    name: str
    sql: str


#: genre ids whose name matches, case-insensitively
GENRE_IDS = Query(
    "genre_ids", "SELECT genre_id FROM dim_genre WHERE lower(name) = lower(%(genre)s)"
)

#: the window's movies ranked by ``analytics.bayesian_top_movies`` (migration 0010: the
#: ranking's only definition, which the explorer calls too): score = v/(v+m)*R + m/(v+m)*C,
#: where v = the movie's ratings in the window ``[date_from, date_to]`` (NULL: open), R their
#: mean, C = the mean of every rating in the window (all movies, whatever the genre filter)
#: and m = the prior weight. Only movies known to ``dim_movie`` are ranked. One row always
#: comes back (``total`` and ``c``, NULL when the window has no rating), with the page's
#: columns NULL when the page is empty; ``analytics.movie_window`` gives C only when no movie
#: is ranked (an InitPlan runs when first needed: one pass over the window otherwise).
TOP_MOVIES = Query(
    "top_movies",
    """
WITH ranked AS (
    SELECT * FROM analytics.bayesian_top_movies(
        %(date_from)s::date, %(date_to)s::date, %(m)s::float8, %(min_votes)s::bigint,
        %(genre)s::text)
)
SELECT t.total,
       coalesce((SELECT window_mean FROM ranked LIMIT 1),
                (SELECT window_mean FROM analytics.movie_window(
                     %(date_from)s::date, %(date_to)s::date) LIMIT 1)) AS c,
       r.movie_id, r.title, r.release_date, r.ratings, r.mean_rating, r.score
FROM (SELECT count(*) AS total FROM ranked) AS t
LEFT JOIN LATERAL (
    SELECT * FROM ranked ORDER BY rank LIMIT %(limit)s OFFSET %(offset)s
) AS r ON true
""",
)

MOVIE = Query(
    "movie",
    """
SELECT movie_id, imdb_id, title, original_title, original_language, overview, tagline,
       status, release_date, runtime_minutes, budget, revenue, popularity,
       vote_average::float8 AS vote_average, vote_count, poster_path, adult, updated_at
FROM dim_movie WHERE movie_id = %(movie_id)s
""",
)

MOVIE_GENRES = Query(
    "movie_genres",
    """
SELECT g.genre_id, g.name
FROM bridge_movie_genre AS b JOIN dim_genre AS g USING (genre_id)
WHERE b.movie_id = %(movie_id)s
ORDER BY g.name
""",
)

MOVIE_TOTALS = Query(
    "movie_totals",
    """
SELECT coalesce(sum(ratings), 0)::bigint AS ratings,
       (sum(rating_sum) / nullif(sum(ratings), 0))::float8 AS mean_rating,
       coalesce(sum(watches), 0)::bigint AS watches,
       coalesce(sum(completed_watches), 0)::bigint AS completed_watches,
       coalesce(sum(watch_seconds), 0)::float8 AS watch_seconds,
       coalesce(sum(comments), 0)::bigint AS comments,
       coalesce(sum(clicks), 0)::bigint AS clicks
FROM agg_movie_daily WHERE movie_id = %(movie_id)s
""",
)

#: one user's activity in one statement (one round trip): ``known`` (in ``dim_user``),
#: ``events`` ({event type: count}), ``last_activity``, ``watch_seconds`` (positions capped at
#: the duration), ``ratings`` ([{rating, count}] by rating) and ``genres`` (the three genres
#: with the most events; every event counts once for each genre of its movie)
USER_STATS = Query(
    "user_stats",
    """
WITH counts AS (
    SELECT 'watch' AS event_type, count(*) AS n, max(occurred_at) AS last
      FROM fact_watch WHERE user_id = %(user_id)s
    UNION ALL
    SELECT 'rate', count(*), max(occurred_at) FROM fact_rating WHERE user_id = %(user_id)s
    UNION ALL
    SELECT 'comment', count(*), max(occurred_at) FROM fact_comment WHERE user_id = %(user_id)s
    UNION ALL
    SELECT 'click', count(*), max(occurred_at) FROM fact_click WHERE user_id = %(user_id)s
), events AS (
    SELECT movie_id FROM fact_watch WHERE user_id = %(user_id)s
    UNION ALL SELECT movie_id FROM fact_rating WHERE user_id = %(user_id)s
    UNION ALL SELECT movie_id FROM fact_comment WHERE user_id = %(user_id)s
    UNION ALL SELECT movie_id FROM fact_click WHERE user_id = %(user_id)s
), genres AS (
    SELECT g.name, count(*) AS events
    FROM events AS e
    JOIN bridge_movie_genre AS b ON b.movie_id = e.movie_id
    JOIN dim_genre AS g ON g.genre_id = b.genre_id
    GROUP BY g.name
    ORDER BY events DESC, g.name
    LIMIT 3
), ratings AS (
    SELECT rating::float8 AS rating, count(*) AS count
    FROM fact_rating WHERE user_id = %(user_id)s
    GROUP BY rating
)
SELECT
    EXISTS (SELECT 1 FROM dim_user WHERE user_id = %(user_id)s) AS known,
    (SELECT json_object_agg(event_type, n) FROM counts) AS events,
    (SELECT max(last) FROM counts) AS last_activity,
    (SELECT coalesce(sum(least(position_seconds, duration_seconds)), 0)::float8
       FROM fact_watch WHERE user_id = %(user_id)s) AS watch_seconds,
    (SELECT coalesce(json_agg(r ORDER BY r.rating), '[]') FROM ratings AS r) AS ratings,
    (SELECT coalesce(json_agg(g ORDER BY g.events DESC, g.name), '[]') FROM genres AS g)
      AS genres
""",
)

#: ``bucket`` is one of day, week (ISO, starting Monday), month: ``date_trunc``'s units
EMOTION_TRENDS = Query(
    "emotion_trends",
    """
SELECT date_trunc(%(bucket)s::text, d.date)::date AS bucket_start, a.emotion,
       sum(a.comments)::bigint AS comments, sum(a.sentiment_sum)::float8 AS sentiment_sum
FROM agg_emotion_daily AS a
JOIN dim_date AS d ON d.date_key = a.date_key
WHERE (%(movie_id)s::bigint IS NULL OR a.movie_id = %(movie_id)s::bigint)
  AND (%(genre_ids)s::int[] IS NULL OR EXISTS (
      SELECT 1 FROM bridge_movie_genre AS b
      WHERE b.movie_id = a.movie_id AND b.genre_id = ANY(%(genre_ids)s::int[])))
GROUP BY 1, 2
ORDER BY 1, 2
""",
)

#: titles of the given movies; movies unknown to ``dim_movie`` are simply missing
MOVIE_TITLES = Query(
    "movie_titles", "SELECT movie_id, title FROM dim_movie WHERE movie_id = ANY(%(ids)s::bigint[])"
)
