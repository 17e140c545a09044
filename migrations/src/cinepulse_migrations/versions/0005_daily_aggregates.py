"""daily aggregates the api reads, written by the batch aggregation job

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

One row per (day, movie), per (day, event type) and per (day, movie, emotion). The job
recomputes whole days (delete + insert in one transaction), so a late event or a promoted
fallback run is reflected by rerunning the days it touched; ``agg_runs`` records each run
(which days, how many rows) and tells the next run where to start.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE agg_movie_daily (
        date_key           integer NOT NULL REFERENCES dim_date (date_key),
        movie_id           bigint NOT NULL CHECK (movie_id > 0),
        events             integer NOT NULL CHECK (events >= 0),
        users              integer NOT NULL CHECK (users >= 0),
        watches            integer NOT NULL CHECK (watches >= 0),
        completed_watches  integer NOT NULL CHECK (completed_watches BETWEEN 0 AND watches),
        watch_seconds      numeric(16, 2) NOT NULL CHECK (watch_seconds >= 0),
        ratings            integer NOT NULL CHECK (ratings >= 0),
        rating_sum         numeric(14, 1) NOT NULL CHECK (rating_sum >= 0),
        rating_histogram   jsonb NOT NULL DEFAULT '{}'::jsonb,
        comments           integer NOT NULL CHECK (comments >= 0),
        sentiment_sum      double precision NOT NULL DEFAULT 0,
        clicks             integer NOT NULL CHECK (clicks >= 0),
        source_flag        source_flag NOT NULL,
        computed_at        timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (date_key, movie_id)
    );
    CREATE INDEX agg_movie_daily_movie_idx ON agg_movie_daily (movie_id, date_key);
    COMMENT ON TABLE agg_movie_daily IS
        'per day and movie: activity, watch time, rating count/sum/histogram, comments, clicks';

    CREATE TABLE agg_daily_activity (
        date_key     integer NOT NULL REFERENCES dim_date (date_key),
        event_type   text NOT NULL CHECK (event_type IN ('watch', 'rate', 'comment', 'click')),
        events       integer NOT NULL CHECK (events >= 0),
        users        integer NOT NULL CHECK (users >= 0),
        movies       integer NOT NULL CHECK (movies >= 0),
        source_flag  source_flag NOT NULL,
        computed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (date_key, event_type)
    );

    CREATE TABLE agg_emotion_daily (
        date_key       integer NOT NULL REFERENCES dim_date (date_key),
        movie_id       bigint NOT NULL CHECK (movie_id > 0),
        emotion        text NOT NULL,
        comments       integer NOT NULL CHECK (comments > 0),
        sentiment_sum  double precision NOT NULL,
        source_flag    source_flag NOT NULL,
        computed_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (date_key, movie_id, emotion)
    );
    CREATE INDEX agg_emotion_daily_movie_idx ON agg_emotion_daily (movie_id, date_key);

    CREATE TABLE agg_runs (
        run_id       bigserial PRIMARY KEY,
        job          text NOT NULL,
        date_from    date,
        date_to      date,
        dates        integer NOT NULL DEFAULT 0,
        rows_written jsonb NOT NULL DEFAULT '{}'::jsonb,
        status       text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'succeeded', 'failed')),
        error        text,
        started_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz
    );
    CREATE INDEX agg_runs_job_idx ON agg_runs (job, status, started_at DESC);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE agg_runs, agg_emotion_daily, agg_daily_activity, agg_movie_daily")
