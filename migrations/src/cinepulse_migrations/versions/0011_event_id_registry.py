"""one event-id registry across event types: staging is the gate, a fallback run has its own

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Before, each fact table had its own key: an ``event_id`` that came again as another event
type became a second fact. Now ``stg_user_logs`` is the registry of every event id, whatever
the type (``cinepulse_common.warehouse.registry``): the load writes a fact only for an id it
registered itself, a copy with other content is quarantined (``event_id_conflict``), a resend
is dropped.

* ``fallback.stg_user_logs``: a fallback run's registry (the same columns, plus ``run_id``),
  so the run applies the rule within itself and promotion registers the run's ids (with
  their content) in the main registry.
* Existing data: facts without a staging row (promoted from a fallback run, which wrote no
  staging) are registered here from the fact: type from its table, user, movie, times,
  session and source position. Their payload was never kept, so ``payload`` becomes
  nullable and stays NULL for them: the registry then compares such an id on the other
  fields only (a resend that differs only in its payload is taken as a resend). The same for
  the facts of fallback runs not yet promoted. Where one id already has facts in several
  tables (the gap this closes), the first table in the order watch, rate, comment, click is
  registered; the extra facts stay as they are (history, not rewritten by a migration).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FACTS = (
    ("watch", "fact_watch"),
    ("rate", "fact_rating"),
    ("comment", "fact_comment"),
    ("click", "fact_click"),
)
COLUMNS = (
    "event_id, event_type, user_id, movie_id, occurred_at, received_at, session_id, payload, "
    "source_topic, source_partition, source_offset, source_flag"
)


def _facts(schema: str, run: str) -> str:
    return " UNION ALL ".join(
        f"SELECT {i} AS ord, {run}event_id, '{etype}'::text AS event_type, user_id, movie_id, "
        "occurred_at, received_at, session_id, NULL::jsonb AS payload, source_topic, "
        f"source_partition, source_offset, source_flag FROM {schema}.{table}"
        for i, (etype, table) in enumerate(FACTS)
    )


def upgrade() -> None:
    op.execute("""
    ALTER TABLE stg_user_logs ALTER COLUMN payload DROP NOT NULL;
    COMMENT ON COLUMN stg_user_logs.payload IS
        'the payload as sent; NULL only for an event registered by migration 0011 from a '
        'fact promoted before the registry existed (its payload was never kept)';
    COMMENT ON TABLE stg_user_logs IS
        'the event-id registry: every valid user event, one row per event_id whatever its '
        'type; a fact is written only for an id registered by the same load';
    CREATE TABLE fallback.stg_user_logs (
        LIKE public.stg_user_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
        run_id text NOT NULL REFERENCES fallback.runs (run_id) ON DELETE CASCADE,
        PRIMARY KEY (run_id, event_id)
    );
    COMMENT ON TABLE fallback.stg_user_logs IS
        'a fallback run''s event-id registry: promotion registers these ids in stg_user_logs';
    """)
    op.execute(f"""
    INSERT INTO stg_user_logs ({COLUMNS})
    SELECT DISTINCT ON (event_id) {COLUMNS} FROM ({_facts("public", "")}) AS f
    WHERE NOT EXISTS (SELECT 1 FROM stg_user_logs AS s WHERE s.event_id = f.event_id)
    ORDER BY event_id, ord
    """)
    op.execute(f"""
    INSERT INTO fallback.stg_user_logs (run_id, {COLUMNS})
    SELECT DISTINCT ON (run_id, event_id) run_id, {COLUMNS}
    FROM ({_facts("fallback", "run_id, ")}) AS f
    ORDER BY run_id, event_id, ord
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE fallback.stg_user_logs;
    DELETE FROM stg_user_logs WHERE payload IS NULL;
    ALTER TABLE stg_user_logs ALTER COLUMN payload SET NOT NULL;
    COMMENT ON TABLE stg_user_logs IS 'every valid user event, deduplicated on event_id';
    COMMENT ON COLUMN stg_user_logs.payload IS NULL;
    """)
