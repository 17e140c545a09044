"""Metabase's warehouse datasource, checked against the real PostgreSQL (Metabase itself cannot
run here: no image registry, not on Maven Central).

The code the chart's ``metabase-setup`` hook runs (``cinepulse_metabase
prepare-database``) makes the LOGIN role on a migrated warehouse holding the data of
``test_api``; then the test logs in with exactly the connection details ``provision`` would
send to Metabase (built by the same function, :func:`datasource_for`) and checks what
Metabase could do with them: read every ``analytics`` view, and nothing else (every table
refused, every write refused). Metabase's own application database, made by the same step,
is checked too: its owner may use it, the reader may not even connect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from cinepulse_common.postgres import RoleError
from cinepulse_common.settings import PostgresSettings
from cinepulse_metabase import (
    AppDatabaseSettings,
    MetabaseSettings,
    MetabaseSetupSettings,
    NotReady,
    datasource_for,
    details_conninfo,
    main,
    prepare_database,
    wait_database,
)
from tests.integration.test_analytics_views import VIEWS, assert_writes_refused
from tests.integration.test_api import TODAY, fill_warehouse

pytestmark = pytest.mark.integration


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@dataclass
class Warehouse:
    """A migrated warehouse with data in every view, and the roles and databases a test
    makes there (dropped afterwards: roles belong to the whole cluster)."""

    pg: PostgresSettings
    roles: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return self.pg.dsn.get_secret_value()

    def settings(
        self, reader: str, password: str, app: dict[str, Any] | None = None
    ) -> MetabaseSetupSettings:
        """The hook's settings for ``reader`` (and Metabase's own database ``app``)."""
        self.roles.append(reader)
        app_db = None
        if app is not None:
            self.databases.append(app["name"])
            self.roles.append(app["user"])
            app_db = AppDatabaseSettings(**app)
        return MetabaseSetupSettings(
            postgres=self.pg,
            metabase=MetabaseSettings(
                reader_role=reader,
                reader_password=SecretStr(password),
                app_database=app_db,
                retry_interval_s=0.2,
            ),
        )


@pytest.fixture
def warehouse(pg_settings: PostgresSettings) -> Iterator[Warehouse]:
    fill_warehouse(pg_settings)
    wh = Warehouse(pg_settings)
    with psycopg.connect(wh.dsn, autocommit=True) as admin:
        admin.execute(
            "INSERT INTO agg_daily_activity (date_key, event_type, events, users, movies,"
            " source_flag) VALUES (%s, 'rate', 32, 3, 3, 'spark')",
            (int(TODAY.strftime("%Y%m%d")),),
        )
    yield wh
    with psycopg.connect(wh.dsn, autocommit=True) as admin:
        for db in wh.databases:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )
        for role in wh.roles:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _as_metabase(settings: MetabaseSetupSettings) -> psycopg.Connection[Any]:
    """A session opened with exactly the details provision sends to Metabase."""
    return psycopg.connect(**details_conninfo(datasource_for(settings)), autocommit=True)


def _tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [
        (s, t)
        for s, t in conn.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    ]


def test_the_datasource_reads_every_view_and_nothing_else(warehouse: Warehouse) -> None:
    settings = warehouse.settings(f"t_mb_{_uid()}", uuid.uuid4().hex)
    summary = prepare_database(settings)  # what the hook's first step runs
    assert summary["reader_created"] is True
    assert set(summary["views_read"]) == set(VIEWS)

    details = datasource_for(settings)
    assert details["user"] == settings.metabase.reader_role
    assert details["dbname"] == conninfo_to_dict(warehouse.dsn)["dbname"]
    owner_password = conninfo_to_dict(warehouse.dsn)["password"]
    assert str(owner_password) not in json.dumps(details)
    with _as_metabase(settings) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (details["user"],)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        for view, columns in VIEWS.items():
            cur = conn.execute(sql.SQL("SELECT * FROM analytics.{}").format(sql.Identifier(view)))
            assert [c.name for c in cur.description or []] == columns, view
            assert cur.fetchall(), f"analytics.{view} is empty"
        tables = _tables(conn)
        assert ("public", "fact_comment") in tables and ("fallback", "runs") in tables
        assert len(tables) > 20
        for schema, table in tables:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE t (x int)")
        assert_writes_refused(conn, "CREATE ROLE t_escalate", "CREATE DATABASE t_escalate")
    with psycopg.connect(warehouse.dsn) as admin:
        member_of = admin.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            (details["user"],),
        ).fetchall()
        assert member_of == [("cinepulse_readonly",)]


def test_runs_again_idempotently_and_a_rotated_password_takes_effect(
    warehouse: Warehouse,
) -> None:
    reader = f"t_mb_{_uid()}"
    first = warehouse.settings(reader, "first-password-1")
    assert prepare_database(first)["reader_created"] is True
    assert prepare_database(first)["reader_created"] is False
    rotated = warehouse.settings(reader, "second-password-2")
    prepare_database(rotated)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _as_metabase(first).close()
    with _as_metabase(rotated) as conn:
        assert conn.execute("SELECT count(*) FROM analytics.movies").fetchone() != (0,)


def test_metabases_own_database_is_made_for_its_owner_only(warehouse: Warehouse) -> None:
    dsn = conninfo_to_dict(warehouse.dsn)
    app: dict[str, Any] = {
        "name": f"t_mbapp_{_uid()}",
        "user": f"t_mbapp_{_uid()}",
        "password": uuid.uuid4().hex,
        "host": str(dsn["host"]),
        "port": int(str(dsn["port"])),
    }
    settings = warehouse.settings(f"t_mb_{_uid()}", uuid.uuid4().hex, app)
    summary = prepare_database(settings)
    assert summary["app_user_created"] and summary["app_database_created"]
    wait_database(settings, timeout_s=5)  # what Metabase's pod waits for: it is there
    owner = {k: app[k] for k in ("host", "port", "password", "user")} | {"dbname": app["name"]}
    with psycopg.connect(**owner, autocommit=True) as conn:  # Metabase migrates it as owner
        conn.execute("CREATE TABLE core_user (id int)")
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    reader = details_conninfo(datasource_for(settings)) | {"dbname": app["name"]}
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(**reader).close()
    again = prepare_database(settings)
    assert not again["app_user_created"] and not again["app_database_created"]


def test_waiting_for_a_missing_application_database_gives_up(warehouse: Warehouse) -> None:
    dsn = conninfo_to_dict(warehouse.dsn)
    settings = MetabaseSetupSettings(
        metabase=MetabaseSettings(
            app_database=AppDatabaseSettings(
                name=f"t_missing_{_uid()}",
                user="nobody",
                password=SecretStr("x"),
                host=str(dsn["host"]),
                port=int(str(dsn["port"])),
            ),
            retry_interval_s=0.2,
        )
    )
    with pytest.raises(NotReady, match="does not accept nobody after 1 s"):
        wait_database(settings, timeout_s=1)


def test_a_role_with_more_powers_is_refused_not_kept(warehouse: Warehouse) -> None:
    powerful, member = f"t_mb_{_uid()}", f"t_mb_{_uid()}"
    with psycopg.connect(warehouse.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(powerful)))
        owner = admin.execute("SELECT current_user").fetchone()
        assert owner is not None
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(member), sql.Identifier(owner[0])
            )
        )
    with pytest.raises(RoleError, match="createdb"):
        prepare_database(warehouse.settings(powerful, "p-1"))
    with pytest.raises(RoleError, match="also a member of"):
        prepare_database(warehouse.settings(member, "p-2"))


def test_the_hook_command(
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = f"t_mb_{_uid()}"
    warehouse.roles.append(reader)
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", warehouse.dsn)
    monkeypatch.setenv("CINEPULSE_METABASE__READER_ROLE", reader)
    monkeypatch.setenv("CINEPULSE_METABASE__READER_PASSWORD", uuid.uuid4().hex)
    assert main(["prepare-database"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["views_read"] == sorted(VIEWS)
