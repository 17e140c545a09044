"""The recommender benchmark's runs against the local stack: a fresh, migrated database with
MovieLens-small loaded through the shared load step, one real training run, then the serving
load (:mod:`.load`) and the tables (:mod:`.tables`). :func:`run` is what ``make bench`` calls;
:func:`serving` is ``python -m bench.recommender serving``."""

from __future__ import annotations

import secrets
import time

from bench import recommender_scale
from bench.recommender.load import serve_and_load
from bench.recommender.tables import quality_table, serving_table
from bench.report import Table
from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import Stack
from cinepulse_devstack.movielens import load_movielens, read_movielens
from cinepulse_migrations.cli import upgrade
from cinepulse_recommender.settings import RecommenderSettings
from cinepulse_recommender.training import run_training, stderr_progress


def run(stack: Stack) -> list[Table]:
    db = f"bench_rec_{secrets.token_hex(4)}"
    dsn = stack.postgres.create_database(db, replace=True)
    try:
        upgrade(dsn, "head")
        pg = PostgresSettings(dsn=dsn)
        t0 = time.monotonic()
        with connect(pg) as conn:
            load_movielens(conn, read_movielens())
        loaded_s = time.monotonic() - t0
        outcome = run_training(RecommenderSettings(postgres=pg), progress=stderr_progress)
        trials, in_app = serve_and_load(stack, dsn)
        tables = [quality_table(outcome, loaded_s), serving_table(trials, in_app)]
    finally:
        stack.postgres.drop_database(db)
    return [*tables, recommender_scale.table(recommender_scale.run_all())]


def serving() -> None:
    """``python -m bench.recommender serving``: the serving table alone (the model trained
    without tuning, so in a minute rather than several), printed as markdown."""
    from cinepulse_recommender.settings import AlsSettings, EaseSettings, ModelSettings, Rp3Settings

    stack = Stack()
    db = f"bench_rec_{secrets.token_hex(4)}"
    dsn = stack.postgres.create_database(db, replace=True)
    try:
        upgrade(dsn, "head")
        pg = PostgresSettings(dsn=dsn)
        with connect(pg) as conn:
            load_movielens(conn, read_movielens())
        fast = RecommenderSettings(
            postgres=pg,
            model=ModelSettings(tune_epochs=False),
            als=AlsSettings(tune=False),
            ease=EaseSettings(tune=False),
            rp3beta=Rp3Settings(tune=False),
        )
        run_training(fast, progress=stderr_progress)  # the model served below
        trials, in_app = serve_and_load(stack, dsn)
        print(serving_table(trials, in_app).markdown())
    finally:
        stack.postgres.drop_database(db)
