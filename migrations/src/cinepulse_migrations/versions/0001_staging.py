"""staging tables and quarantine

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Staging keeps records close to how they arrived (the JSON payload untouched) so a transform
bug can be fixed and re-run from here. ``quarantine`` holds records that broke a rule in
``transform_rules.json``, with the rule and the reason: counted, never silently dropped.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE DOMAIN source_flag AS text
        CHECK (VALUE ~ '^[a-z][a-z0-9_-]{0,31}$');
    COMMENT ON DOMAIN source_flag IS
        'which path wrote the row: spark, pandas, replay, tmdb-fetcher, smoke, ...';

    CREATE TABLE stg_movies (
        movie_id     bigint PRIMARY KEY CHECK (movie_id > 0),
        title        text,
        raw          jsonb NOT NULL,
        fetched_at   timestamptz NOT NULL,
        source_flag  source_flag NOT NULL,
        loaded_at    timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE stg_movies IS 'latest TMDB movie details as fetched (raw JSON), one row per movie';

    CREATE TABLE stg_user_logs (
        event_id          uuid PRIMARY KEY,
        event_type        text NOT NULL CHECK (event_type IN ('watch', 'rate', 'comment', 'click')),
        user_id           text NOT NULL,
        movie_id          bigint NOT NULL,
        occurred_at       timestamptz NOT NULL,
        received_at       timestamptz,
        session_id        text,
        payload           jsonb NOT NULL,
        source_topic      text,
        source_partition  integer,
        source_offset     bigint,
        source_flag       source_flag NOT NULL,
        loaded_at         timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX stg_user_logs_occurred_at_idx ON stg_user_logs (occurred_at);
    COMMENT ON TABLE stg_user_logs IS 'every valid user event, deduplicated on event_id';

    CREATE TABLE stg_comments (
        event_id      uuid PRIMARY KEY REFERENCES stg_user_logs (event_id) ON DELETE CASCADE,
        user_id       text NOT NULL,
        movie_id      bigint NOT NULL,
        occurred_at   timestamptz NOT NULL,
        comment_text  text NOT NULL,
        source_flag   source_flag NOT NULL,
        loaded_at     timestamptz NOT NULL DEFAULT now()
    );
    COMMENT ON TABLE stg_comments IS 'comment text awaiting emotion and sentiment labelling';

    CREATE TABLE quarantine (
        quarantine_id     bigserial PRIMARY KEY,
        event_id          uuid,
        event_type        text,
        source_topic      text,
        source_partition  integer,
        source_offset     bigint,
        raw               text NOT NULL,
        rule              text NOT NULL,
        reason            text NOT NULL,
        source_flag       source_flag NOT NULL,
        quarantined_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE NULLS NOT DISTINCT (source_topic, source_partition, source_offset, event_id)
    );
    CREATE INDEX quarantine_rule_idx ON quarantine (rule, quarantined_at);
    COMMENT ON TABLE quarantine IS
        'records that broke a transform rule; the unique key makes a replayed record land once';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE quarantine;
    DROP TABLE stg_comments;
    DROP TABLE stg_user_logs;
    DROP TABLE stg_movies;
    DROP DOMAIN source_flag;
    """)
