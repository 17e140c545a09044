"""Migration 0008: the ``analytics`` views and the ``cinepulse_readonly`` role (and migration
0010's ranking functions over the views), against the real PostgreSQL. A LOGIN role made a
member of ``cinepulse_readonly`` (as the migration's docstring says a dashboard tool's role is
made) reads every view, and nothing else: no fact, no staging or raw table, no write of any
kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from cinepulse_common.settings import PostgresSettings
from cinepulse_migrations.cli import downgrade, upgrade
from tests.integration.test_api import TODAY, fill_warehouse

#: writes a member of the read-only role is refused, whatever its session's default says
WRITES = (
    "INSERT INTO analytics.daily_activity (date, date_key, event_type, events, users,"
    " movies) VALUES ('2026-01-01', 20260101, 'rate', 1, 1, 1)",
    "UPDATE analytics.movies SET title = 'x'",
    "DELETE FROM analytics.user_activity",
    "INSERT INTO public.dim_genre VALUES (999, 'X', 'spark')",
    "UPDATE public.dim_movie SET title = 'x'",
    "DELETE FROM public.fact_rating",
    "TRUNCATE public.agg_movie_daily",
    "CREATE TABLE analytics.t (x int)",
    "CREATE TABLE public.t (x int)",
    "CREATE VIEW analytics.v AS SELECT 1",
    "DROP VIEW analytics.movies",
    "GRANT SELECT ON public.fact_comment TO PUBLIC",
)


def assert_writes_refused(conn: psycopg.Connection, *more: str) -> None:
    """Every write of :data:`WRITES` (and ``more``) is refused by the grants, even after the
    session turns its read-only default off (a belt a session can take off; the grants are
    the wall)."""
    conn.execute("SET default_transaction_read_only = off")
    for statement in (*WRITES, *more):
        with pytest.raises(
            (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState)
        ):
            conn.execute(statement)


pytestmark = pytest.mark.integration

ROLE = "cinepulse_readonly"
#: the views and their columns, in order (the explorer and dashboards code against them)
VIEWS: dict[str, list[str]] = {
    "movies": [
        "movie_id",
        "title",
        "original_title",
        "original_language",
        "release_date",
        "release_year",
        "runtime_minutes",
        "popularity",
        "vote_average",
        "vote_count",
        "genres",
    ],
    "movie_daily": [
        "date",
        "date_key",
        "movie_id",
        "title",
        "events",
        "users",
        "watches",
        "completed_watches",
        "watch_seconds",
        "ratings",
        "rating_sum",
        "mean_rating",
        "comments",
        "mean_sentiment",
        "clicks",
    ],
    "daily_activity": ["date", "date_key", "event_type", "events", "users", "movies"],
    "emotion_daily": [
        "date",
        "date_key",
        "movie_id",
        "title",
        "emotion",
        "comments",
        "mean_sentiment",
    ],
    "genre_daily": [
        "date",
        "date_key",
        "genre",
        "events",
        "ratings",
        "mean_rating",
        "watches",
        "comments",
        "clicks",
    ],
    "user_activity": [
        "user_id",
        "first_seen_at",
        "last_seen_at",
        "watches",
        "ratings",
        "mean_rating",
        "comments",
        "clicks",
    ],
}


def _as(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def reader(pg_settings: PostgresSettings) -> Iterator[psycopg.Connection]:
    """A dashboard tool's login role, made as the migration documents, connected to a
    database holding the data of ``test_api``."""
    fill_warehouse(pg_settings)
    admin_dsn = pg_settings.dsn.get_secret_value()
    name, password = f"t_reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            "INSERT INTO agg_daily_activity (date_key, event_type, events, users, movies,"
            " source_flag) VALUES (%s, 'rate', 32, 3, 3, 'spark')",
            (int(TODAY.strftime("%Y%m%d")),),
        )
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(ROLE)
            )
        )
        admin.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(name)
            )
        )
        try:
            with psycopg.connect(_as(admin_dsn, name, password), autocommit=True) as conn:
                yield conn
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_the_reader_selects_every_view(reader: psycopg.Connection) -> None:
    for view, columns in VIEWS.items():
        cur = reader.execute(sql.SQL("SELECT * FROM analytics.{}").format(sql.Identifier(view)))
        assert [c.name for c in cur.description or []] == columns, view
        assert cur.fetchall(), f"analytics.{view} is empty"
    movies = reader.execute(
        "SELECT title, genres FROM analytics.movies WHERE movie_id = 2"
    ).fetchone()
    assert movies == ("Beta", ["Comedy", "Drama"])
    critic = reader.execute(
        "SELECT watches, ratings, mean_rating, comments, clicks FROM analytics.user_activity"
        " WHERE user_id = 'critic'"
    ).fetchone()
    assert critic == (2, 4, 4.25, 1, 3)  # (4.5 + 4.5 + 3.0 + 5.0) / 4
    beta_today = reader.execute(
        "SELECT ratings, mean_rating FROM analytics.movie_daily WHERE movie_id = 2 AND date = %s",
        (TODAY,),
    ).fetchone()
    assert beta_today == (12, 4.5)
    drama = reader.execute(
        "SELECT ratings FROM analytics.genre_daily WHERE genre = 'Drama' AND date = %s", (TODAY,)
    ).fetchone()
    assert drama == (14,)  # Alpha 2 + Beta 12


def test_the_reader_ranks_the_top_movies(reader: psycopg.Connection) -> None:
    """Migration 0010's functions run with their owner's rights, as the views do: the role
    calls them (EXECUTE granted) and still reads no table."""
    week = (TODAY - timedelta(days=6), TODAY)
    top = reader.execute(
        "SELECT rank, movie_id, title, ratings"
        " FROM analytics.bayesian_top_movies(%s, %s, 10, 1, 'drama') ORDER BY rank",
        week,
    ).fetchall()
    assert top == [(1, 2, "Beta", 20), (2, 1, "Alpha", 2)]
    rated = reader.execute(
        "SELECT movie_id, ratings FROM analytics.movie_window(%s, %s) ORDER BY movie_id", week
    ).fetchall()
    assert rated == [(1, 2), (2, 20), (3, 10)]


def _ranking_functions(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'analytics'"
        ).fetchall()
    return {r[0] for r in rows}


def test_downgrade_drops_the_ranking_functions_and_upgrade_restores_them(
    empty_pg_dsn: str,
) -> None:
    upgrade(empty_pg_dsn, "head")
    assert _ranking_functions(empty_pg_dsn) == {"bayesian_top_movies", "movie_window"}
    downgrade(empty_pg_dsn, "0009")
    assert _ranking_functions(empty_pg_dsn) == set()
    upgrade(empty_pg_dsn, "head")
    assert _ranking_functions(empty_pg_dsn) == {"bayesian_top_movies", "movie_window"}


def _all_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return [f"{s}.{t}" for s, t in rows]


def test_the_reader_reads_no_table(reader: psycopg.Connection) -> None:
    tables = _all_tables(reader)
    # the facts with free text, the raw staging, the quarantine, the fallback runs: all of them
    for must in ("public.fact_comment", "public.stg_user_logs", "public.stg_comments"):
        assert must in tables
    assert "public.quarantine" in tables and "fallback.runs" in tables
    for table in tables:
        schema, name = table.split(".")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(
                sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                    sql.Identifier(schema), sql.Identifier(name)
                )
            )


def test_the_reader_cannot_write(reader: psycopg.Connection) -> None:
    assert reader.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.execute("CREATE TEMP TABLE t (x int)")
    assert_writes_refused(reader, "ALTER VIEW analytics.movies RENAME TO m")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute(f"SET ROLE {ROLE}; CREATE TABLE analytics.t (x int)")


def test_the_role_is_nologin_and_read_only(pg_settings: PostgresSettings) -> None:
    with psycopg.connect(pg_settings.dsn.get_secret_value()) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = %s",
            (ROLE,),
        ).fetchone()
        assert row == (False, False, False, False)
        settings = conn.execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %s AND s.setdatabase = 0",
            (ROLE,),
        ).fetchone()
        assert settings is not None and "default_transaction_read_only=on" in settings[0]
        # SELECT on the views, USAGE on the schema: nothing more anywhere
        grants = conn.execute(
            "SELECT table_schema, privilege_type, count(*) FROM information_schema.role_table_grants"
            " WHERE grantee = %s GROUP BY 1, 2",
            (ROLE,),
        ).fetchall()
        assert grants == [("analytics", "SELECT", len(VIEWS))]
        # and EXECUTE on migration 0010's two ranking functions, which PUBLIC does not have
        routines = conn.execute(
            "SELECT grantee, routine_schema, routine_name FROM information_schema.role_routine_grants"
            " WHERE routine_schema = 'analytics' AND privilege_type = 'EXECUTE'"
            " AND grantee <> routine_schema AND grantee <> current_user ORDER BY 1, 3"
        ).fetchall()
        assert routines == [
            (ROLE, "analytics", "bayesian_top_movies"),
            (ROLE, "analytics", "movie_window"),
        ]


def test_downgrade_drops_the_views_and_upgrade_restores_them(empty_pg_dsn: str) -> None:
    def views(dsn: str) -> set[str]:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.views WHERE table_schema = 'analytics'"
            ).fetchall()
        return {r[0] for r in rows}

    upgrade(empty_pg_dsn, "head")
    assert views(empty_pg_dsn) == set(VIEWS)
    downgrade(empty_pg_dsn, "0007")
    assert views(empty_pg_dsn) == set()
    with psycopg.connect(empty_pg_dsn) as conn:
        # the role stays (roles are the cluster's), holding nothing in this database
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'analytics'").fetchone()
    upgrade(empty_pg_dsn, "head")  # the role exists already: upgrading again works
    assert views(empty_pg_dsn) == set(VIEWS)


def test_a_view_a_later_migration_adds_is_readable_too(
    pg_settings: PostgresSettings, reader: psycopg.Connection
) -> None:
    # the migration's default privileges: the migrating user's new views in analytics
    with psycopg.connect(pg_settings.dsn.get_secret_value(), autocommit=True) as admin:
        admin.execute("CREATE VIEW analytics.later AS SELECT 1 AS x")
    assert reader.execute("SELECT x FROM analytics.later").fetchone() == (1,)
