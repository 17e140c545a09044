"""one PostgreSQL group role per service, each granted only what that service uses

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Until now every service logged in as the database's owner (a superuser in the bundled
PostgreSQL), so a bug or an injection in the api could write facts or drop the schema. This
migration creates a NOLOGIN group role per service, with the grants its code uses (found by
reading its SQL; ``docs/operations/security.md`` lists them) and nothing else:

* ``cinepulse_api``: SELECT on the star schema (dimensions, bridges, facts, aggregates) and,
  as a member of ``cinepulse_readonly`` (migration 0008), the ``analytics`` views and
  functions. No write at all: the api's read-only mode no longer rests on a session SET.
* ``cinepulse_explorer``: a member of ``cinepulse_readonly``, nothing more (the views only).
* ``cinepulse_recommender``: SELECT on the dimensions, bridges and facts it trains on;
  SELECT, INSERT, UPDATE on its registry ``recsys.models``.
* ``cinepulse_spark``: writes the warehouse (staging, quarantine, facts: INSERT only, so it
  never rewrites history; dimensions and bridges: upserts and the bridges' DELETE;
  aggregates: DELETE and COPY of the dates it recomputes; ``agg_runs``) and empties its two
  landing tables (TRUNCATE on those only); reads ``stg_movies``.
* ``cinepulse_fallback``: everything in schema ``fallback`` (and tables later migrations add
  there, by default privileges); reads the public registry and facts to skip what Spark
  wrote; promotion INSERTs into staging, quarantine and the facts and upserts dimensions.
* ``cinepulse_fetcher``: ``stg_movies``, ``tmdb_watermarks``, ``tmdb_fetch_runs``.
* ``cinepulse_quality``: SELECT on what the reconciliation counts (staging, quarantine,
  facts, schema ``fallback``).
* The event gateway writes only to Kafka: it gets no role and no PostgreSQL credentials.

A service logs in as its own LOGIN role, a member of its group only
(``cinepulse_common.postgres.ensure_login_role``; the local stack makes one per group).
Nobody but the migrating role owns a table or may CREATE in a schema: ``CREATE`` on
``public`` is revoked from PUBLIC (already so on PostgreSQL 15+; not on older servers).
Spark's landing tables, which Spark used to create at its first batch, are created here, so
Spark needs no CREATE.

Roles belong to the cluster: created when missing (the migrating user needs CREATEROLE, or an
admin creates them beforehand, as for 0008). The downgrade revokes this database's grants
but leaves the roles and their memberships, which other databases of the cluster may use.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

READONLY_ROLE = "cinepulse_readonly"
API, EXPLORER, RECOMMENDER = "cinepulse_api", "cinepulse_explorer", "cinepulse_recommender"
SPARK, FALLBACK, FETCHER, QUALITY = (
    "cinepulse_spark",
    "cinepulse_fallback",
    "cinepulse_fetcher",
    "cinepulse_quality",
)
ROLES = (API, EXPLORER, RECOMMENDER, SPARK, FALLBACK, FETCHER, QUALITY)

DIMS = "dim_date, dim_movie, dim_genre, dim_company, dim_keyword, dim_user"
BRIDGES = "bridge_movie_genre, bridge_movie_company, bridge_movie_keyword"
FACTS = "fact_watch, fact_rating, fact_comment, fact_click"
AGGS = "agg_movie_daily, agg_daily_activity, agg_emotion_daily"
STAGING = "stg_user_logs, stg_comments, quarantine"
#: Spark's landing tables (``cinepulse_spark_jobs.stream.LANDING`` = "spark_batch",
#: ``cinepulse_common.warehouse.batch_tables``), with the columns of
#: ``cinepulse_common.warehouse.columns`` as they are at this revision: frozen here, so that a
#: later change of those columns is a migration of its own (ALTER TABLE), never a different
#: 0012 (tests/unit/test_migrations_frozen.py checks they still agree)
LANDING = (
    (
        "spark_batch_events",
        "event_id uuid, event_type text, user_id text, movie_id bigint, date_key integer, "
        "occurred_at timestamptz, received_at timestamptz, session_id text, source_topic text, "
        "source_partition integer, source_offset bigint, payload jsonb, "
        "position_seconds numeric(10, 2), duration_seconds numeric(10, 2), "
        "completion_ratio numeric(5, 4), completed boolean, rating numeric(2, 1), "
        "comment_text text, emotion text, sentiment real, emotion_scores jsonb, "
        "classifier_version text, target text, is_late boolean",
    ),
    (
        "spark_batch_quarantine",
        "event_id uuid, event_type text, source_topic text, source_partition integer, "
        "source_offset bigint, raw text, rule text, reason text",
    ),
)


def _create_role(role: str) -> str:
    return f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            BEGIN
                CREATE ROLE {role} NOLOGIN;
            EXCEPTION
                WHEN duplicate_object THEN NULL;  -- another database's migration won the race
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role {role} does not exist and the migrating user cannot '
                        'create it: run CREATE ROLE {role} NOLOGIN as an admin, then migrate '
                        'again';
            END;
        END IF;
    END
    $$;
    """


def upgrade() -> None:
    for role in ROLES:
        op.execute(_create_role(role))
    for table, columns in LANDING:
        op.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {table} ({columns})")
    landing = ", ".join(table for table, _ in LANDING)
    op.execute(f"""
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;

    GRANT {READONLY_ROLE} TO {API}, {EXPLORER};
    GRANT SELECT ON {DIMS}, {BRIDGES}, {FACTS}, {AGGS} TO {API};

    GRANT SELECT ON {DIMS}, {BRIDGES}, {FACTS} TO {RECOMMENDER};
    GRANT USAGE ON SCHEMA recsys TO {RECOMMENDER};
    GRANT SELECT, INSERT, UPDATE ON recsys.models TO {RECOMMENDER};

    GRANT SELECT ON stg_movies TO {SPARK};
    GRANT SELECT, INSERT ON {STAGING}, {FACTS} TO {SPARK};
    GRANT SELECT, INSERT, UPDATE, DELETE ON {DIMS}, {BRIDGES} TO {SPARK};
    GRANT SELECT, INSERT, DELETE ON {AGGS} TO {SPARK};
    GRANT SELECT, INSERT, UPDATE ON agg_runs TO {SPARK};
    GRANT SELECT, INSERT, DELETE, TRUNCATE ON {landing} TO {SPARK};
    GRANT USAGE ON SEQUENCE quarantine_quarantine_id_seq, agg_runs_run_id_seq TO {SPARK};

    GRANT USAGE ON SCHEMA fallback TO {FALLBACK};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA fallback TO {FALLBACK};
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA fallback TO {FALLBACK};
    ALTER DEFAULT PRIVILEGES IN SCHEMA fallback
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {FALLBACK};
    ALTER DEFAULT PRIVILEGES IN SCHEMA fallback GRANT USAGE ON SEQUENCES TO {FALLBACK};
    GRANT SELECT ON stg_movies TO {FALLBACK};
    GRANT SELECT, INSERT ON {STAGING}, {FACTS} TO {FALLBACK};
    GRANT SELECT, INSERT, UPDATE, DELETE ON {DIMS}, {BRIDGES} TO {FALLBACK};
    GRANT USAGE ON SEQUENCE quarantine_quarantine_id_seq TO {FALLBACK};

    GRANT SELECT, INSERT, UPDATE ON stg_movies, tmdb_watermarks, tmdb_fetch_runs TO {FETCHER};

    GRANT SELECT ON {STAGING}, {FACTS} TO {QUALITY};
    GRANT USAGE ON SCHEMA fallback TO {QUALITY};
    GRANT SELECT ON ALL TABLES IN SCHEMA fallback TO {QUALITY};
    ALTER DEFAULT PRIVILEGES IN SCHEMA fallback GRANT SELECT ON TABLES TO {QUALITY};
    """)


def downgrade() -> None:
    # grants are this database's; roles and their memberships (the api's and the explorer's
    # in cinepulse_readonly) are the cluster's, which other databases may use: they stay
    roles = ", ".join(ROLES)
    landing = ", ".join(table for table, _ in LANDING)
    op.execute(f"""
    ALTER DEFAULT PRIVILEGES IN SCHEMA fallback REVOKE ALL ON TABLES FROM {FALLBACK}, {QUALITY};
    ALTER DEFAULT PRIVILEGES IN SCHEMA fallback REVOKE ALL ON SEQUENCES FROM {FALLBACK};
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {roles};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {roles};
    REVOKE ALL ON ALL TABLES IN SCHEMA fallback FROM {roles};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA fallback FROM {roles};
    REVOKE ALL ON ALL TABLES IN SCHEMA recsys FROM {roles};
    REVOKE ALL ON SCHEMA fallback, recsys FROM {roles};
    DROP TABLE {landing};
    """)
