"""movie versions ordered by fetch time: ``fetched_at`` on ``dim_movie`` and
``fallback.dim_movie``

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

``dim_movie`` is SCD type 1, and until now the last write won: a fallback run promoted
after a later run, or a replayed Kafka record loaded after a newer one, put an older TMDB
version back. Each row now carries the fetch time of its version (``stg_movies`` has had it
since 0001), and every load keeps the newest (``cinepulse_common.warehouse.movies``): a
version replaces the stored one only when its ``fetched_at`` is the same or later, or the
stored one has none; a version without a fetch time never replaces one that has one.

Nullable: rows loaded before this migration have no fetch time (the next version of the
movie, whatever its time, replaces them), and a record whose ``fetched_at`` is missing or
unreadable has none either. The grants of 0012 are on whole tables, so the new column
needs none of its own.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("public.dim_movie", "fallback.dim_movie")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN fetched_at timestamptz")
        op.execute(f"""
        COMMENT ON COLUMN {table}.fetched_at IS
            'when TMDB was fetched for this version; an older version never replaces a newer one';
        """)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN fetched_at")
