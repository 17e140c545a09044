"""analytics views and a read-only role for dashboard tools (Metabase, the explorer)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

* Schema ``analytics``: views over the aggregates and dimensions, named for people who write
  SQL by hand: ``movies`` (with genre names), ``movie_daily``, ``daily_activity``,
  ``emotion_daily``, ``genre_daily`` and ``user_activity`` (per user counts and span; no
  comment text, no raw payloads: the views carry no free text a user wrote).
* Role ``cinepulse_readonly`` (NOLOGIN, ``default_transaction_read_only``): USAGE on
  ``analytics`` and SELECT on its views (and, through default privileges, on views later
  migrations add there), nothing else. The views run with their owner's rights, so the role
  reads the facts only through them. A dashboard tool logs in as its own role made a member
  of it; a role's settings are not inherited by its members, so the login role gets the
  read-only default too (the chart's metabase-setup hook does this from a Secret, with
  ``cinepulse_common.postgres.ensure_login_role``)::

      CREATE ROLE metabase LOGIN PASSWORD '...' IN ROLE cinepulse_readonly;
      ALTER ROLE metabase SET default_transaction_read_only = on;

  ``default_transaction_read_only`` is a safety belt (a session may turn it off); what stops
  writes is that the role is granted nothing but SELECT on the views (the tests check both).
* Roles belong to the whole PostgreSQL cluster: the role is created when missing (the
  migrating user needs CREATEROLE; a managed database's admin can create it beforehand, and
  then the read-only default is set only if the migrating user may), and a downgrade revokes
  its grants but leaves it for other databases of the cluster.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

READONLY_ROLE = "cinepulse_readonly"


def upgrade() -> None:
    op.execute(f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READONLY_ROLE}') THEN
            BEGIN
                CREATE ROLE {READONLY_ROLE} NOLOGIN;
            EXCEPTION
                WHEN duplicate_object THEN NULL;  -- another database's migration won the race
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role {READONLY_ROLE} does not exist and the migrating '
                        'user cannot create it: run CREATE ROLE {READONLY_ROLE} NOLOGIN as '
                        'an admin, then migrate again';
            END;
        END IF;
        BEGIN
            ALTER ROLE {READONLY_ROLE} SET default_transaction_read_only = on;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot set default_transaction_read_only on {READONLY_ROLE} '
                '(an admin created it); its grants still allow nothing but SELECT';
        END;
    END
    $$;

    CREATE SCHEMA analytics;
    COMMENT ON SCHEMA analytics IS
        'read-only views for dashboards; the role {READONLY_ROLE} reads only these';

    CREATE VIEW analytics.movies AS
    SELECT m.movie_id, m.title, m.original_title, m.original_language, m.release_date,
           extract(year FROM m.release_date)::integer AS release_year, m.runtime_minutes,
           m.popularity, m.vote_average::float8 AS vote_average, m.vote_count,
           coalesce(array_agg(g.name ORDER BY g.name) FILTER (WHERE g.name IS NOT NULL),
                    '{{}}') AS genres
    FROM dim_movie AS m
    LEFT JOIN bridge_movie_genre AS b ON b.movie_id = m.movie_id
    LEFT JOIN dim_genre AS g ON g.genre_id = b.genre_id
    GROUP BY m.movie_id;

    CREATE VIEW analytics.movie_daily AS
    SELECT d.date, a.date_key, a.movie_id, m.title, a.events, a.users, a.watches,
           a.completed_watches, a.watch_seconds::float8 AS watch_seconds, a.ratings,
           a.rating_sum::float8 AS rating_sum,
           (a.rating_sum / nullif(a.ratings, 0))::float8 AS mean_rating,
           a.comments, (a.sentiment_sum / nullif(a.comments, 0))::float8 AS mean_sentiment,
           a.clicks
    FROM agg_movie_daily AS a
    JOIN dim_date AS d ON d.date_key = a.date_key
    LEFT JOIN dim_movie AS m ON m.movie_id = a.movie_id;

    CREATE VIEW analytics.daily_activity AS
    SELECT d.date, a.date_key, a.event_type, a.events, a.users, a.movies
    FROM agg_daily_activity AS a
    JOIN dim_date AS d ON d.date_key = a.date_key;

    CREATE VIEW analytics.emotion_daily AS
    SELECT d.date, a.date_key, a.movie_id, m.title, a.emotion, a.comments,
           (a.sentiment_sum / a.comments)::float8 AS mean_sentiment
    FROM agg_emotion_daily AS a
    JOIN dim_date AS d ON d.date_key = a.date_key
    LEFT JOIN dim_movie AS m ON m.movie_id = a.movie_id;

    CREATE VIEW analytics.genre_daily AS
    SELECT d.date, a.date_key, g.name AS genre, sum(a.events)::bigint AS events,
           sum(a.ratings)::bigint AS ratings,
           (sum(a.rating_sum) / nullif(sum(a.ratings), 0))::float8 AS mean_rating,
           sum(a.watches)::bigint AS watches, sum(a.comments)::bigint AS comments,
           sum(a.clicks)::bigint AS clicks
    FROM agg_movie_daily AS a
    JOIN dim_date AS d ON d.date_key = a.date_key
    JOIN bridge_movie_genre AS b ON b.movie_id = a.movie_id
    JOIN dim_genre AS g ON g.genre_id = b.genre_id
    GROUP BY d.date, a.date_key, g.name;

    CREATE VIEW analytics.user_activity AS
    SELECT u.user_id, u.first_seen_at, u.last_seen_at,
           (SELECT count(*) FROM fact_watch AS f WHERE f.user_id = u.user_id) AS watches,
           (SELECT count(*) FROM fact_rating AS f WHERE f.user_id = u.user_id) AS ratings,
           (SELECT avg(rating)::float8 FROM fact_rating AS f WHERE f.user_id = u.user_id)
               AS mean_rating,
           (SELECT count(*) FROM fact_comment AS f WHERE f.user_id = u.user_id) AS comments,
           (SELECT count(*) FROM fact_click AS f WHERE f.user_id = u.user_id) AS clicks
    FROM dim_user AS u;

    GRANT USAGE ON SCHEMA analytics TO {READONLY_ROLE};
    GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO {READONLY_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO {READONLY_ROLE};
    """)


def downgrade() -> None:
    op.execute(f"""
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics REVOKE SELECT ON TABLES FROM {READONLY_ROLE};
    REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM {READONLY_ROLE};
    REVOKE ALL ON SCHEMA analytics FROM {READONLY_ROLE};
    DROP SCHEMA analytics CASCADE;
    """)
