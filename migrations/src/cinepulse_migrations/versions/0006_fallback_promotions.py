"""fallback runs and replays, promotions recorded, a run's quarantine keyed like the main one

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

* ``fallback.runs`` records both kinds of pandas job: ``fallback`` (written apart, into this
  schema, until promoted) and ``replay`` (raw MongoDB data reprocessed straight into the main
  tables), who asked for it, and how many raw events it read. A run's rows are written in one
  transaction with its final status, so a failed run leaves none.
* ``fallback.promotions``: every (non dry-run) promotion of a run into the main tables: who,
  when, and per table the rows inserted and those already there (Spark's stay as they are).
* ``fallback.quarantine`` gets the main quarantine's key (the source position and event id),
  per run, so a record is quarantined once per run whatever happens.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE fallback.runs
        ADD COLUMN kind text NOT NULL DEFAULT 'fallback' CHECK (kind IN ('fallback', 'replay')),
        ADD COLUMN requested_by text,
        ADD COLUMN events_read bigint NOT NULL DEFAULT 0 CHECK (events_read >= 0);
    ALTER TABLE fallback.runs
        ADD CONSTRAINT runs_only_fallback_promoted CHECK (status <> 'promoted' OR kind = 'fallback');
    CREATE INDEX runs_started_idx ON fallback.runs (started_at DESC);

    ALTER TABLE fallback.quarantine
        ADD CONSTRAINT quarantine_run_source_key
        UNIQUE NULLS NOT DISTINCT (run_id, source_topic, source_partition, source_offset, event_id);

    CREATE TABLE fallback.promotions (
        promotion_id   bigserial PRIMARY KEY,
        run_id         text NOT NULL REFERENCES fallback.runs (run_id),
        promoted_by    text NOT NULL CHECK (promoted_by <> ''),
        promoted_at    timestamptz NOT NULL DEFAULT now(),
        rows_inserted  jsonb NOT NULL,
        rows_present   jsonb NOT NULL
    );
    CREATE INDEX promotions_run_idx ON fallback.promotions (run_id, promoted_at);
    COMMENT ON TABLE fallback.promotions IS
        'each promotion of a fallback run into the main tables (dry runs are not recorded)';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE fallback.promotions;
    ALTER TABLE fallback.quarantine DROP CONSTRAINT quarantine_run_source_key;
    DROP INDEX fallback.runs_started_idx;
    ALTER TABLE fallback.runs
        DROP CONSTRAINT runs_only_fallback_promoted,
        DROP COLUMN events_read,
        DROP COLUMN requested_by,
        DROP COLUMN kind;
    """)
