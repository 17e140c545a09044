"""Migrations against the real PostgreSQL: upgrade, downgrade, and the domain constraints."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest

from cinepulse_common.settings import PostgresSettings
from cinepulse_migrations.cli import downgrade, main, upgrade

FACTS = ("fact_watch", "fact_rating", "fact_comment", "fact_click")


def _tables(dsn: str, schema: str = "public") -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def _fetched_at(dsn: str) -> list[tuple[str, str]]:
    """Where the movies' ``fetched_at`` column is (migration 0013), with its type."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT table_schema, data_type FROM information_schema.columns"
            " WHERE table_name = 'dim_movie' AND column_name = 'fetched_at' ORDER BY 1"
        ).fetchall()


def test_upgrade_downgrade_upgrade_round_trip(empty_pg_dsn: str) -> None:
    upgrade(empty_pg_dsn, "head")
    timestamptz = "timestamp with time zone"
    assert _fetched_at(empty_pg_dsn) == [("fallback", timestamptz), ("public", timestamptz)]
    downgrade(empty_pg_dsn, "0012")
    assert _fetched_at(empty_pg_dsn) == []
    upgrade(empty_pg_dsn, "head")
    tables = _tables(empty_pg_dsn)
    assert {"stg_movies", "stg_user_logs", "stg_comments", "quarantine"} <= tables
    assert {
        "dim_movie",
        "dim_genre",
        "bridge_movie_genre",
        "dim_company",
        "bridge_movie_company",
        "dim_user",
        "dim_date",
        *FACTS,
    } <= tables
    assert {*FACTS, "runs", "quarantine"} <= _tables(empty_pg_dsn, "fallback")
    fallback_movies = {"dim_movie", "dim_genre", "dim_keyword", "dim_company"} | {
        f"bridge_movie_{d}" for d in ("genre", "keyword", "company")
    }
    assert fallback_movies <= _tables(empty_pg_dsn, "fallback")  # 0009
    downgrade(empty_pg_dsn, "0008")
    assert not fallback_movies & _tables(empty_pg_dsn, "fallback")
    upgrade(empty_pg_dsn, "head")

    downgrade(empty_pg_dsn, "0002")
    assert "runs" not in _tables(empty_pg_dsn, "fallback")
    downgrade(empty_pg_dsn, "base")
    assert _tables(empty_pg_dsn) == {"alembic_version"}
    upgrade(empty_pg_dsn, "head")
    assert {*FACTS} <= _tables(empty_pg_dsn, "fallback")


def test_every_modelled_table_has_source_flag(pg_settings: PostgresSettings) -> None:
    with psycopg.connect(pg_settings.dsn.get_secret_value()) as conn:
        rows = conn.execute("""
            SELECT t.table_schema || '.' || t.table_name
            FROM information_schema.tables t
            WHERE t.table_schema IN ('public', 'fallback')
              AND (t.table_name ~ '^(stg|dim|fact|bridge)_' OR t.table_name = 'quarantine')
              AND t.table_name <> 'dim_date'
              AND NOT EXISTS (SELECT 1 FROM information_schema.columns c
                              WHERE c.table_schema = t.table_schema
                                AND c.table_name = t.table_name AND c.column_name = 'source_flag')
        """).fetchall()
    assert rows == []


def test_cli_reports_failure_with_nonzero_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dsn", "postgresql://nobody:x@127.0.0.1:1/none", "current"]) == 1
    assert "cinepulse-migrate: current failed" in capsys.readouterr().err


@pytest.fixture
def conn(pg_settings: PostgresSettings):
    with psycopg.connect(pg_settings.dsn.get_secret_value(), autocommit=True) as c:
        c.execute("INSERT INTO dim_user VALUES ('u1', now(), now(), 'spark')")
        yield c


def _rating(
    conn: psycopg.Connection,
    rating: object,
    event_id=None,
    user="u1",
    schema="public",
    extra_cols: str = "",
    extra_vals: tuple = (),
) -> None:
    conn.execute(
        f"INSERT INTO {schema}.fact_rating (event_id, user_id, movie_id, date_key, occurred_at,"
        f" source_flag, rating{extra_cols}) VALUES (%s, %s, 603, 20261126, %s, 'spark', %s"
        f"{', %s' * len(extra_vals)})",
        (event_id or uuid4(), user, datetime(2026, 11, 26, tzinfo=UTC), rating, *extra_vals),
    )


def test_rating_domain_is_enforced(conn: psycopg.Connection) -> None:
    _rating(conn, 4.5)
    _rating(conn, 0.5)
    for bad in (4.3, 0, 5.5, -1):
        with pytest.raises(psycopg.errors.CheckViolation):
            _rating(conn, bad)


def test_event_id_is_the_idempotency_key(conn: psycopg.Connection) -> None:
    eid = uuid4()
    _rating(conn, 4.0, event_id=eid)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _rating(conn, 4.0, event_id=eid)
    conn.execute(
        "INSERT INTO fact_rating (event_id, user_id, movie_id, date_key, occurred_at, source_flag,"
        " rating) VALUES (%s, 'u1', 603, 20261126, now(), 'pandas', 2.0)"
        " ON CONFLICT (event_id) DO NOTHING",
        (eid,),
    )
    assert conn.execute(
        "SELECT rating, source_flag FROM fact_rating WHERE event_id = %s", (eid,)
    ).fetchall() == [(4.0, "spark")]


def test_facts_reference_known_users_and_dates(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        _rating(conn, 3.0, user="ghost")
    assert conn.execute("SELECT count(*) FROM dim_date").fetchone()[0] > 47000
    assert conn.execute(
        "SELECT is_weekend, day_of_week FROM dim_date WHERE date_key = 20261128"
    ).fetchone() == (True, 6)


def test_source_flag_domain(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO dim_genre VALUES (1, 'Drama', 'Not A Flag!')")


def test_fallback_facts_keep_shapes_and_checks_per_run(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO fallback.runs (run_id, window_start, window_end) "
        "VALUES ('r1', now() - interval '1 hour', now()), "
        "('r2', now() - interval '1 hour', now())"
    )
    eid = uuid4()
    # fallback facts do not reference dim_user: a run may hold users Spark has not seen;
    # the same event may appear once in each run
    for run_id in ("r1", "r2"):
        _rating(
            conn,
            4.0,
            event_id=eid,
            user="ghost",
            schema="fallback",
            extra_cols=", run_id",
            extra_vals=(run_id,),
        )
    with pytest.raises(psycopg.errors.UniqueViolation):
        _rating(
            conn, 4.0, event_id=eid, schema="fallback", extra_cols=", run_id", extra_vals=("r1",)
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        _rating(conn, 9.0, schema="fallback", extra_cols=", run_id", extra_vals=("r1",))


def test_quarantine_lands_a_replayed_record_once(conn: psycopg.Connection) -> None:
    sql = (
        "INSERT INTO quarantine (source_topic, source_partition, source_offset, raw, rule,"
        " reason, source_flag) VALUES ('user_rating_log', 0, 7, '{', 'json', 'bad', 'spark')"
        " ON CONFLICT DO NOTHING"
    )
    conn.execute(sql)
    conn.execute(sql)
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 1
