"""the Bayesian top-movies ranking, defined once in ``analytics`` for the api and the explorer

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``/api/top_movies`` (SQL of its own over the aggregates) and the explorer's top movies tab
(pandas over ``analytics.movie_daily``) each computed the ranking; these two functions are
now its only definition, and both call them:

* ``analytics.movie_window(date_from, date_to)``: every movie with at least one rating in the
  window (known to ``dim_movie`` or not), with ``ratings`` (v), ``rating_sum``,
  ``mean_rating`` (R) and ``window_mean`` (C: the mean of every rating of the window, all
  movies, whatever a caller filters afterwards; the same on every row).
* ``analytics.bayesian_top_movies(date_from, date_to, prior_votes, min_votes, genre)``: the
  movies of ``movie_window`` known to ``dim_movie`` with at least ``min_votes`` ratings (and
  of ``genre`` when given, its name in any case), scored ``v/(v+m)*R + m/(v+m)*C`` with m =
  ``prior_votes`` (a movie with few ratings is pulled towards C) and numbered by ``rank``:
  best score first, then more ratings, then the lower id. C is the whole window's mean
  whatever the filters, so a movie's score does not change with the genre or ``min_votes``.

Window days are inclusive; a NULL bound is open (``NULL, NULL``: every day). m stays each
service's setting (``CINEPULSE_BAYES_PRIOR_VOTES``), passed on each call.

Why functions, not a view: the window, the genre, ``min_votes`` and m change per request and
C depends on the window, so a view would have to fix the window (or list every window), and
a table of parameters would be state shared by concurrent requests. A function returning a
table is a view with parameters.

Why ``SECURITY DEFINER`` over the tables: like the views of 0008, the functions run with
their owner's rights, so ``cinepulse_readonly`` (the explorer, Metabase) calls them without
reading any table; they return only what ``analytics.movie_daily`` and ``analytics.movies``
already show. ``search_path`` is pinned (``pg_catalog, pg_temp``; every table is
schema-qualified) and EXECUTE is the owner's (the api's login) and ``cinepulse_readonly``'s
only. Written over those views instead (SECURITY INVOKER, inlined), the ranking read
``dim_date`` for every aggregate row and grouped every movie's genres: on the benchmark's
data (3,000 movies, 58,000 ``agg_movie_daily`` rows) an uncached all-time ranking took 2.5
times as long as the api's previous SQL, a month 10 times.

Why PL/pgSQL ``RETURN QUERY EXECUTE ... USING`` around plain SQL: the statement is planned on
each call with the window's bounds known, as the api's own statement was. A ``LANGUAGE sql``
function's statement is planned with its parameters unknown: it then guessed a small window
for every call, read all of ``agg_movie_daily`` through its index for an all-time ranking and
joined ``dim_movie`` row by row, 25% slower than before on the same data; this way an
all-time ranking takes what the old statement took, a day or a month a few tenths of a
millisecond more (the functions' own planning).
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

READONLY_ROLE = "cinepulse_readonly"
FUNCTIONS = (
    "analytics.movie_window(date, date)",
    "analytics.bayesian_top_movies(date, date, float8, bigint, text)",
)


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION analytics.movie_window(date_from date, date_to date)
    RETURNS TABLE (movie_id bigint, ratings bigint, rating_sum float8, mean_rating float8,
                   window_mean float8)
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $f$
    BEGIN
        -- $1 date_from, $2 date_to
        RETURN QUERY EXECUTE $q$
            SELECT w.movie_id, w.v, w.s, w.s / w.v, sum(w.s) OVER () / sum(w.v) OVER ()
            FROM (
                SELECT a.movie_id, sum(a.ratings)::bigint AS v, sum(a.rating_sum)::float8 AS s
                FROM public.agg_movie_daily AS a
                WHERE a.date_key BETWEEN coalesce(to_char($1, 'YYYYMMDD')::integer, 0)
                                     AND coalesce(to_char($2, 'YYYYMMDD')::integer, 99991231)
                GROUP BY a.movie_id
                HAVING sum(a.ratings) > 0
            ) AS w
        $q$ USING date_from, date_to;
    END
    $f$;
    COMMENT ON FUNCTION analytics.movie_window(date, date) IS
        'per movie rated in the window [date_from, date_to] (NULL: open), known or not: '
        'ratings, their sum and mean, and window_mean, the mean of every rating of the window';

    CREATE FUNCTION analytics.bayesian_top_movies(
        date_from date, date_to date, prior_votes float8, min_votes bigint DEFAULT 1,
        genre text DEFAULT NULL)
    RETURNS TABLE (rank bigint, movie_id bigint, title text, release_date date,
                   ratings bigint, mean_rating float8, window_mean float8, score float8)
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $f$
    BEGIN
        -- $1 date_from, $2 date_to, $3 prior_votes (m), $4 min_votes, $5 genre
        RETURN QUERY EXECUTE $q$
            SELECT row_number() OVER (ORDER BY s.score DESC, s.ratings DESC, s.movie_id), s.*
            FROM (
                SELECT w.movie_id, m.title, m.release_date, w.ratings, w.mean_rating,
                       w.window_mean,
                       w.ratings / (w.ratings + $3) * w.mean_rating
                         + $3 / (w.ratings + $3) * w.window_mean AS score
                FROM analytics.movie_window($1, $2) AS w
                JOIN public.dim_movie AS m ON m.movie_id = w.movie_id
                WHERE w.ratings >= $4
                  AND ($5 IS NULL OR EXISTS (
                      SELECT 1 FROM public.bridge_movie_genre AS b
                      JOIN public.dim_genre AS g ON g.genre_id = b.genre_id
                      WHERE b.movie_id = w.movie_id AND lower(g.name) = lower($5)))
            ) AS s
        $q$ USING date_from, date_to, prior_votes, min_votes, genre;
    END
    $f$;
    COMMENT ON FUNCTION analytics.bayesian_top_movies(date, date, float8, bigint, text) IS
        'the window''s movies known to dim_movie with at least min_votes ratings (of genre, '
        'any case, when given) by the Bayesian average v/(v+m)*R + m/(v+m)*C, m = '
        'prior_votes, C = movie_window''s window_mean; rank: best score, then more ratings, '
        'then the lower id';
    """)
    for function in FUNCTIONS:
        op.execute(f"""
        REVOKE ALL ON FUNCTION {function} FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION {function} TO {READONLY_ROLE};
        """)


def downgrade() -> None:
    for function in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
