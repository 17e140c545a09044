"""tmdb-fetcher state: content hash on stg_movies, watermarks, runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

``stg_movies.content_hash`` (SHA-256 of the normalised movie) is the fetcher's commit
marker: it is written last, so a movie whose hash is already there was published to Kafka
and archived; a rerun after a crash skips it (no duplicate) and does every movie without it
(no gap). ``tmdb_watermarks`` holds the incremental watermark (the end of the last
completed ``/movie/changes`` window), advanced only when a window is complete.
``tmdb_fetch_runs`` records every run with its counts.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE stg_movies ADD COLUMN content_hash text;
    COMMENT ON COLUMN stg_movies.content_hash IS
        'SHA-256 of the normalised movie; written last by tmdb-fetcher (its commit marker)';

    CREATE TABLE tmdb_watermarks (
        name        text PRIMARY KEY,
        value       timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE tmdb_watermarks IS 'tmdb-fetcher: end of the last completed window';

    CREATE TABLE tmdb_fetch_runs (
        run_id       text PRIMARY KEY,
        mode         text NOT NULL CHECK (mode IN ('full', 'incremental', 'ids')),
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz,
        status       text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        window_start timestamptz,
        window_end   timestamptz,
        counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
        error        text
    );
    COMMENT ON TABLE tmdb_fetch_runs IS 'tmdb-fetcher runs and their counts';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE tmdb_fetch_runs;
    DROP TABLE tmdb_watermarks;
    ALTER TABLE stg_movies DROP COLUMN content_hash;
    """)
