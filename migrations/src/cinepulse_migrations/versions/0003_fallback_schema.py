"""fallback schema: pandas-fallback output kept apart until an admin promotes a run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Facts here have the same shapes and domain checks as the main facts (``LIKE ... INCLUDING
CONSTRAINTS``) plus a ``run_id``; an event appears at most once per run. Nothing here is read
by the api until a run is promoted into the main facts.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA fallback;
    COMMENT ON SCHEMA fallback IS 'pandas-fallback runs, never merged automatically';

    CREATE TABLE fallback.runs (
        run_id        text PRIMARY KEY,
        window_start  timestamptz NOT NULL,
        window_end    timestamptz NOT NULL CHECK (window_end > window_start),
        status        text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'promoted')),
        reason        text,
        rows_written  jsonb NOT NULL DEFAULT '{}'::jsonb,
        error         text,
        started_at    timestamptz NOT NULL DEFAULT now(),
        finished_at   timestamptz
    );
    """)
    for fact in FACTS:
        op.execute(f"""
        CREATE TABLE fallback.{fact} (
            LIKE public.{fact} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
            run_id text NOT NULL REFERENCES fallback.runs (run_id) ON DELETE CASCADE,
            PRIMARY KEY (run_id, event_id)
        );
        """)
    op.execute("""
    CREATE TABLE fallback.quarantine (
        LIKE public.quarantine INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
        run_id text NOT NULL REFERENCES fallback.runs (run_id) ON DELETE CASCADE
    );
    ALTER TABLE fallback.quarantine ADD PRIMARY KEY (run_id, quarantine_id);
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA fallback CASCADE")
