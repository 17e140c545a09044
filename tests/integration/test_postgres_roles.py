"""Each service's PostgreSQL role (migration 0012) on the real server: what its code runs is
allowed, and a representative set of statements outside its grants is refused by PostgreSQL
itself with its permission error (SQLSTATE 42501, ``InsufficientPrivilege``).

Every statement runs in a transaction that is rolled back, as a LOGIN role that is a member
of its group only, made the way the local stack makes the services' logins. A session first
turns ``default_transaction_read_only`` off, as any client may: the grants are the boundary,
not the session's settings. Writes use ``... WHERE false`` forms: PostgreSQL checks the
privileges of every table a statement names before it reads a row, so they prove the grant
without needing valid data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from cinepulse_devstack import Stack

pytestmark = pytest.mark.integration

#: the service -> its group role (None: a login with no role at all, as the gateway would have)
GROUPS: dict[str, str | None] = {
    "api": "cinepulse_api",
    "explorer": "cinepulse_explorer",
    "recommender": "cinepulse_recommender",
    "spark": "cinepulse_spark",
    "fallback": "cinepulse_fallback",
    "fetcher": "cinepulse_fetcher",
    "quality": "cinepulse_quality",
    "gateway": None,
}
#: services that only read: their logins' sessions default to read-only, as the services' will
READERS = {"api", "explorer", "quality", "gateway"}
#: the migrating role (the stack's admin), which owns the schema
OWNER = "migrations"


def _copy(table: str) -> str:
    """An INSERT of no row: needs INSERT on ``table`` and SELECT on it."""
    return f"INSERT INTO {table} SELECT * FROM {table} WHERE false"


ALLOWED: list[tuple[str, str]] = [
    ("api", "SELECT count(*) FROM analytics.movies"),
    ("api", "SELECT count(*) FROM analytics.movie_window(current_date - 7, current_date)"),
    ("api", "SELECT count(*) FROM fact_rating JOIN dim_movie USING (movie_id)"),
    ("api", "SELECT count(*) FROM agg_movie_daily JOIN dim_date USING (date_key)"),
    ("explorer", "SELECT count(*) FROM analytics.movie_daily"),
    ("explorer", "SELECT count(*) FROM analytics.user_activity"),
    ("recommender", "SELECT count(*) FROM fact_watch JOIN bridge_movie_genre USING (movie_id)"),
    ("recommender", _copy("recsys.models")),
    ("recommender", "UPDATE recsys.models SET status = status WHERE false"),
    ("spark", _copy("stg_user_logs")),
    ("spark", _copy("fact_rating")),
    ("spark", _copy("quarantine")),
    ("spark", "UPDATE dim_user SET last_seen_at = last_seen_at WHERE false"),
    ("spark", "DELETE FROM bridge_movie_genre WHERE false"),
    ("spark", "DELETE FROM agg_movie_daily WHERE false"),
    ("spark", "UPDATE agg_runs SET status = status WHERE false"),
    ("spark", "TRUNCATE spark_batch_events, spark_batch_quarantine"),
    ("spark", "SELECT nextval('quarantine_quarantine_id_seq')"),
    ("spark", "SELECT count(*) FROM stg_movies"),
    ("fallback", _copy("fallback.fact_rating")),
    ("fallback", "UPDATE fallback.runs SET status = status WHERE false"),
    ("fallback", "DELETE FROM fallback.dim_movie WHERE false"),
    ("fallback", "SELECT nextval('fallback.promotions_promotion_id_seq')"),
    ("fallback", _copy("fact_rating")),  # promotion
    ("fallback", "UPDATE dim_movie SET title = title WHERE false"),
    ("fetcher", _copy("stg_movies")),
    ("fetcher", "UPDATE tmdb_watermarks SET value = value WHERE false"),
    ("fetcher", _copy("tmdb_fetch_runs")),
    ("quality", "SELECT count(*) FROM stg_user_logs JOIN fact_rating USING (event_id)"),
    ("quality", "SELECT count(*) FROM fallback.quarantine JOIN fallback.runs USING (run_id)"),
    (OWNER, "CREATE TABLE roles_probe (i int)"),
    (OWNER, "ALTER TABLE fact_rating ADD COLUMN roles_probe int"),
    (OWNER, "DROP TABLE recsys.models"),
]

REFUSED: list[tuple[str, str]] = [
    ("api", _copy("fact_rating")),
    ("api", "UPDATE recsys.models SET status = status"),
    ("api", "SELECT count(*) FROM stg_user_logs"),
    ("api", "SELECT count(*) FROM fallback.runs"),
    ("api", "DELETE FROM dim_movie"),
    ("explorer", "SELECT count(*) FROM stg_user_logs"),
    ("explorer", "SELECT count(*) FROM fact_comment"),
    ("explorer", "SELECT count(*) FROM recsys.models"),
    ("explorer", "SELECT count(*) FROM agg_movie_daily"),  # behind the views
    ("explorer", _copy("fact_rating")),
    ("recommender", "DELETE FROM recsys.models"),
    ("recommender", _copy("fact_rating")),
    ("recommender", "SELECT count(*) FROM stg_user_logs"),
    ("recommender", "SELECT count(*) FROM fallback.runs"),
    ("spark", "UPDATE fact_rating SET rating = rating"),
    ("spark", "DELETE FROM fact_rating"),
    ("spark", "TRUNCATE fact_rating"),
    ("spark", "DELETE FROM stg_user_logs"),
    ("spark", "SELECT count(*) FROM fallback.runs"),
    ("spark", "UPDATE recsys.models SET status = status"),
    ("spark", _copy("stg_movies")),
    ("fallback", "DELETE FROM fact_rating"),
    ("fallback", "UPDATE fact_rating SET rating = rating"),
    ("fallback", "DELETE FROM agg_movie_daily"),
    ("fallback", "TRUNCATE spark_batch_events"),
    ("fallback", "SELECT count(*) FROM recsys.models"),
    ("fetcher", "SELECT count(*) FROM stg_user_logs"),
    ("fetcher", _copy("dim_movie")),
    ("fetcher", "SELECT count(*) FROM analytics.movies"),
    ("quality", _copy("quarantine")),
    ("quality", "UPDATE fallback.runs SET status = status"),
    ("quality", "SELECT count(*) FROM recsys.models"),
    ("gateway", "SELECT count(*) FROM analytics.movies"),
    ("gateway", "SELECT count(*) FROM dim_movie"),
    ("gateway", "SELECT count(*) FROM recsys.models"),
    ("gateway", _copy("stg_user_logs")),
]
#: what only the migrations may do, refused to every service
DDL = [
    "CREATE TABLE public.roles_probe (i int)",
    "CREATE SCHEMA roles_probe",
    "DROP TABLE dim_movie",
    "ALTER TABLE fact_rating ADD COLUMN roles_probe int",
    "CREATE INDEX roles_probe ON fact_watch (user_id)",
    "CREATE TABLE fallback.roles_probe (i int)",
    "CREATE ROLE roles_probe",
    "SET ROLE cinepulse_readonly",
]
REFUSED += [(service, statement) for service in GROUPS for statement in DDL]
# a role may SET ROLE to a group it is a member of: the api and explorer are readers
REFUSED.remove(("api", "SET ROLE cinepulse_readonly"))
REFUSED.remove(("explorer", "SET ROLE cinepulse_readonly"))
CASES = [(*case, True) for case in ALLOWED] + [(*case, False) for case in REFUSED]


@pytest.fixture(scope="module")
def connections(stack: Stack, migrated_template: str) -> Iterator[dict[str, Any]]:
    """One autocommit session per service (its login role) and one as the migrating role,
    on a migrated database of this module's own."""
    db = f"t_roles_{uuid.uuid4().hex[:8]}"
    admin_dsn = stack.postgres.create_database(db, template=migrated_template)
    conns: dict[str, Any] = {}
    try:
        conns[OWNER] = psycopg.connect(admin_dsn, autocommit=True)
        for service, group in GROUPS.items():
            dsn = stack.postgres.login_role(
                f"cinepulse_{service}_login",
                group,
                read_only=service in READERS,
                database=db,
            )
            conns[service] = psycopg.connect(dsn, autocommit=True)
            # what the api's "read-only mode" was: a setting the session itself may undo
            conns[service].execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        yield conns
    finally:
        for conn in conns.values():
            conn.close()
        stack.postgres.drop_database(db)


def _run(conn: psycopg.Connection[Any], statement: str, params: Any = None) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(statement, params)


@pytest.mark.parametrize(
    ("service", "statement", "allowed"),
    CASES,
    ids=[f"{s}-{'allowed' if a else 'refused'}-{q}" for s, q, a in CASES],
)
def test_a_role_may_run_only_what_it_is_granted(
    connections: dict[str, Any], service: str, statement: str, allowed: bool
) -> None:
    conn = connections[service]
    if allowed:
        _run(conn, statement)
    else:
        with pytest.raises(errors.InsufficientPrivilege):
            _run(conn, statement)


def test_a_readers_login_starts_read_only_and_holds_no_power(
    stack: Stack, connections: dict[str, Any]
) -> None:
    """The services' logins: members of their group only, no superuser, CREATEROLE,
    CREATEDB, replication or BYPASSRLS; readers' sessions read-only by default."""
    owner = connections[OWNER]
    rows = owner.execute(
        "SELECT r.rolname, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
        " OR r.rolbypassrls, coalesce(array_agg(g.rolname) FILTER (WHERE g.rolname IS NOT"
        " NULL), '{}'), coalesce(r.rolconfig, '{}')"
        " FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid"
        " LEFT JOIN pg_roles g ON g.oid = m.roleid"
        " WHERE r.rolname LIKE 'cinepulse\\_%\\_login' GROUP BY r.oid, r.rolname, r.rolsuper,"
        " r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, r.rolconfig"
    ).fetchall()
    found = {name: (powers, groups, config) for name, powers, groups, config in rows}
    for service, group in GROUPS.items():
        powers, groups, config = found[f"cinepulse_{service}_login"]
        assert not powers, service
        assert groups == ([group] if group else []), service
        assert ("default_transaction_read_only=on" in config) == (service in READERS), service
    # a fresh reader's session is read-only until it says otherwise
    dsn = stack.postgres.login_role(
        "cinepulse_api_login", "cinepulse_api", database=owner.info.dbname
    )
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)


def test_downgrade_revokes_every_grant_and_upgrade_restores_them(
    stack: Stack, empty_pg_dsn: str
) -> None:
    """0012's downgrade leaves the roles and their memberships (the cluster's: other
    databases may use them) but no grant or landing table of its own in this database;
    upgrading again restores them."""
    from cinepulse_migrations.cli import downgrade, upgrade

    upgrade(empty_pg_dsn, "head")
    db = psycopg.conninfo.conninfo_to_dict(empty_pg_dsn)["dbname"]
    dsn = stack.postgres.login_role("cinepulse_api_login", "cinepulse_api", database=str(db))
    count = "SELECT count(*) FROM fact_rating"
    with psycopg.connect(dsn, autocommit=True) as api:
        assert api.execute(count).fetchone() == (0,)
        downgrade(empty_pg_dsn, "0011")
        with pytest.raises(errors.InsufficientPrivilege):
            api.execute(count)
        # still a reader: the membership is the cluster's (0008's grants to the views stay)
        assert api.execute("SELECT count(*) FROM analytics.movies").fetchone() is not None
        with psycopg.connect(empty_pg_dsn) as owner:
            assert owner.execute("SELECT to_regclass('spark_batch_events')").fetchone() == (None,)
            grants = owner.execute(
                "SELECT count(*) FROM information_schema.role_table_grants"
                " WHERE grantee LIKE 'cinepulse\\_%' AND grantee <> 'cinepulse_readonly'"
            ).fetchone()
            assert grants == (0,)
        upgrade(empty_pg_dsn, "head")
        assert api.execute(count).fetchone() == (0,)


def test_the_migrate_command_makes_each_services_login(
    empty_pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart's migrations Job runs: ``cinepulse-migrate upgrade head`` with the
    services' passwords from its Secret makes each login, a member of its group only; an
    unknown service's password is refused rather than silently ignored."""
    from cinepulse_migrations.cli import main
    from cinepulse_migrations.logins import ENV_PREFIX, SERVICES, login_name

    # the chart's logins are this module's services (the gateway has none)
    assert {s: g for s, (g, _) in SERVICES.items()} == {s: g for s, g in GROUPS.items() if g}
    assert {s for s, (_, ro) in SERVICES.items() if ro} == READERS - {"gateway"}
    passwords = {service: uuid.uuid4().hex for service in SERVICES}
    for service, password in passwords.items():
        monkeypatch.setenv(f"{ENV_PREFIX}{service.upper()}", password)
    assert main(["--dsn", empty_pg_dsn, "upgrade", "head"]) == 0
    info = psycopg.conninfo.conninfo_to_dict(empty_pg_dsn)
    for service in ("api", "recommender"):
        login = {**info, "user": login_name(service), "password": passwords[service]}
        with psycopg.connect(psycopg.conninfo.make_conninfo(**login), autocommit=True) as conn:
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
            assert conn.execute("SELECT count(*) FROM fact_rating").fetchone() == (0,)
            update = "UPDATE recsys.models SET status = status WHERE false"
            if service == "api":
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(update)
            else:
                conn.execute(update)
    monkeypatch.setenv(f"{ENV_PREFIX}GATEWAY", "x")
    assert main(["--dsn", empty_pg_dsn, "upgrade", "head"]) == 1


def test_the_warehouse_code_runs_as_its_services_roles(
    stack: Stack, connections: dict[str, Any]
) -> None:
    """Not only single statements: Spark's micro-batch load (landing tables, registry,
    facts), a fallback run and its promotion, the TMDB fetcher's watermark and staging, the
    recommender's training snapshot and the reconciliation's reads, each run by the
    services' own code as its own service's login."""
    from datetime import UTC, datetime, timedelta

    from cinepulse_common.postgres import connect
    from cinepulse_common.settings import PostgresSettings
    from cinepulse_common.warehouse import promote_run
    from cinepulse_quality.reconcile import KafkaRecord, Observed
    from cinepulse_quality.sources import read_postgres
    from cinepulse_recommender.warehouse import read_training_data
    from cinepulse_tmdb_fetcher.adapters.postgres import PostgresStaging, PostgresWatermark
    from tests.integration.test_event_id_registry import _row, _spark
    from tests.integration.test_event_id_registry import _run as _fallback_run

    db = connections[OWNER].info.dbname

    def settings(service: str) -> PostgresSettings:
        dsn = stack.postgres.login_role(
            f"cinepulse_{service}_login", GROUPS[service], read_only=False, database=db
        )
        return PostgresSettings(dsn=dsn)  # type: ignore[arg-type]

    spark_id, fallback_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert _spark(settings("spark"), [_row(spark_id, "watch", 0)])["fact_watch"] == 1
    with connect(settings("fallback")) as conn:
        run = _fallback_run(conn, [_row(fallback_id, "rate", 1)])
        assert promote_run(conn, run)["fact_rating"] == {"inserted": 1, "present": 0}
    watermark = PostgresWatermark(settings("fetcher"))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    watermark.write(at)
    assert watermark.read() == at
    assert PostgresStaging(settings("fetcher")).stored_hashes([603]) == {}
    # the recommender's training snapshot and the reconciliation's reads
    with connect(settings("recommender")) as conn:
        data = read_training_data(conn, at - timedelta(days=30), at, ["genre", "keyword"])
    assert data.catalogue.movie_ids.size == 0
    observed = Observed(records=[KafkaRecord(("user_watch_log", 0, 0), spark_id)])
    with connect(settings("quality")) as conn:
        read_postgres(conn, observed)
    assert spark_id in observed.fact_ids
    counts = (
        connections[OWNER]
        .execute(
            "SELECT (SELECT count(*) FROM fact_watch WHERE event_id = %s),"
            " (SELECT count(*) FROM fact_rating WHERE event_id = %s)",
            (spark_id, fallback_id),
        )
        .fetchone()
    )
    assert counts == (1, 1)


def test_every_api_query_runs_as_the_api_and_none_as_the_explorer(
    connections: dict[str, Any],
) -> None:
    """Each statement of the api (``cinepulse_api.adapters.queries``) runs as the api's
    login; the explorer, which reads only the ``analytics`` views and functions, is refused
    each one that reads a table."""
    import re

    from cinepulse_api.adapters import queries

    statements = [q for q in vars(queries).values() if isinstance(q, queries.Query)]
    assert len(statements) >= 8
    given = {"bucket": "day", "m": 1.0, "min_votes": 1, "limit": 1, "offset": 0}
    refused = []
    for query in statements:
        params = {k: given.get(k) for k in re.findall(r"%\((\w+)\)s", query.sql)}
        _run(connections["api"], query.sql, params)
        try:
            _run(connections["explorer"], query.sql, params)
        except errors.InsufficientPrivilege:
            refused.append(query.name)
    # all but the ranking, which goes through the analytics functions the explorer may call
    assert set(refused) == {q.name for q in statements} - {"top_movies"}
