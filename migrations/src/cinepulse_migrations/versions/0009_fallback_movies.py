"""fallback movies: a fallback run's ``dim_movie``, genre, keyword and company dimensions and
bridges, kept apart until the run is promoted

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

The main schema's movie tables, per run: the same columns and checks (``LIKE ... INCLUDING
CONSTRAINTS``) plus a ``run_id``; a movie (and a genre, keyword or company) appears at most
once per run (the newest version the run read: an extension replaces it, as a later
micro-batch does on the streaming path). The bridges reference the run's own movies and
dimensions. Promotion (``cinepulse_common.warehouse.promote_run``) upserts them into the main
tables with the streaming path's SCD type 1 load; deleting a run deletes them.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: (dimension, its key, its bridge)
DIMS = (
    ("dim_genre", "genre_id", "bridge_movie_genre"),
    ("dim_keyword", "keyword_id", "bridge_movie_keyword"),
    ("dim_company", "company_id", "bridge_movie_company"),
)


def upgrade() -> None:
    op.execute("""
    CREATE TABLE fallback.dim_movie (
        LIKE public.dim_movie INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
        run_id text NOT NULL REFERENCES fallback.runs (run_id) ON DELETE CASCADE,
        PRIMARY KEY (run_id, movie_id)
    );
    COMMENT ON TABLE fallback.dim_movie IS
        'the movies a fallback run read (its newest version of each), until promoted';
    """)
    for dim, key, bridge in DIMS:
        op.execute(f"""
        CREATE TABLE fallback.{dim} (
            LIKE public.{dim} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
            run_id text NOT NULL REFERENCES fallback.runs (run_id) ON DELETE CASCADE,
            PRIMARY KEY (run_id, {key})
        );
        CREATE TABLE fallback.{bridge} (
            LIKE public.{bridge} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
            run_id text NOT NULL,
            PRIMARY KEY (run_id, movie_id, {key}),
            FOREIGN KEY (run_id, movie_id)
                REFERENCES fallback.dim_movie (run_id, movie_id) ON DELETE CASCADE,
            FOREIGN KEY (run_id, {key}) REFERENCES fallback.{dim} (run_id, {key}) ON DELETE CASCADE
        );
        """)


def downgrade() -> None:
    for dim, _, bridge in DIMS:
        op.execute(f"DROP TABLE fallback.{bridge}, fallback.{dim}")
    op.execute("DROP TABLE fallback.dim_movie")
