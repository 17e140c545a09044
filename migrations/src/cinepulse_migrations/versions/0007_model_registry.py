"""the recommender's model registry

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``recsys.models``: one row per trained model version, with its evaluation (the new model and
the baselines of the same run, on the same split), the training-data window, the parameters
and the artefact itself (``bytea``: a few MB; the training Job and the serving pods then share
nothing but the database). ``status``: ``candidate`` while training/evaluating, ``published``
when it beat the current published model (or was the first), ``rejected`` otherwise. The
server loads the newest published version.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA recsys;
    CREATE TABLE recsys.models (
        version          text PRIMARY KEY,
        created_at       timestamptz NOT NULL DEFAULT now(),
        status           text NOT NULL DEFAULT 'candidate'
                         CHECK (status IN ('candidate', 'published', 'rejected')),
        published_at     timestamptz,
        data_from        timestamptz,
        data_to          timestamptz,
        n_users          integer NOT NULL DEFAULT 0 CHECK (n_users >= 0),
        n_items          integer NOT NULL DEFAULT 0 CHECK (n_items >= 0),
        n_interactions   bigint NOT NULL DEFAULT 0 CHECK (n_interactions >= 0),
        params           jsonb NOT NULL DEFAULT '{}'::jsonb,
        metrics          jsonb NOT NULL DEFAULT '{}'::jsonb,
        reason           text,
        artefact         bytea,
        artefact_sha256  text,
        CHECK (status <> 'published' OR (published_at IS NOT NULL AND artefact IS NOT NULL))
    );
    CREATE INDEX models_published_idx ON recsys.models (published_at DESC)
        WHERE status = 'published';
    COMMENT ON TABLE recsys.models IS
        'recommender model versions: metrics (model and baselines, same split), window, '
        'parameters, artefact; the server loads the newest published one';
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA recsys CASCADE")
