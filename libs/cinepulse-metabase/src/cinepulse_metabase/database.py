"""The PostgreSQL side: the datasource details Metabase is given, the reader role and
Metabase's application database (``prepare-database``), and waiting for that database."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from cinepulse_common.postgres import (
    READONLY_ROLE,
    RoleError,
    ensure_login_role,
    ensure_owned_database,
)
from cinepulse_common.settings import PostgresSettings
from cinepulse_metabase.settings import (
    AppDatabaseSettings,
    ConfigError,
    MetabaseSetupSettings,
    NotReady,
    _need,
    _stderr,
)

# ------------------------------------------------------------------------------ the datasource


def datasource_details(
    warehouse_dsn: str, role: str, password: str, schema: str = "analytics"
) -> dict[str, Any]:
    """The ``postgres`` details Metabase is given: the warehouse's host, port and database
    (read from the owner's DSN), the reader's own login (never the owner's), SSL when the
    DSN asks for it, and only ``schema`` synced."""
    params = conninfo_to_dict(warehouse_dsn)
    host = str(params.get("host") or "")
    if not host or host.startswith("/") or "," in host:
        raise ConfigError(
            f"the warehouse DSN must name one TCP host for Metabase to connect to (got {host!r})"
        )
    dbname = params.get("dbname")
    if not dbname:
        raise ConfigError("the warehouse DSN names no database")
    return {
        "host": host,
        "port": int(params.get("port") or 5432),
        "dbname": str(dbname),
        "user": role,
        "password": password,
        "ssl": params.get("sslmode") in ("require", "verify-ca", "verify-full"),
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": schema,
        "tunnel-enabled": False,
        "advanced-options": False,
    }


def datasource_for(settings: MetabaseSetupSettings) -> dict[str, Any]:
    """:func:`datasource_details` from the settings: what ``provision`` sends to Metabase and
    what ``prepare-database`` (and the integration test) log in with."""
    mb = settings.metabase
    pg: PostgresSettings = _need(settings.postgres, "CINEPULSE_POSTGRES__DSN")
    password: SecretStr = _need(mb.reader_password, "CINEPULSE_METABASE__READER_PASSWORD")
    return datasource_details(
        pg.dsn.get_secret_value(), mb.reader_role, password.get_secret_value(), mb.schema_name
    )


def details_conninfo(details: dict[str, Any]) -> dict[str, Any]:
    """libpq parameters of Metabase's postgres ``details``, as its JDBC driver uses them:
    host, port, database, user, password; TLS required when ``ssl`` is on, else tried first
    and plain on refusal (Metabase also tries SSL first: warehouses/api.clj)."""
    return {
        "host": details["host"],
        "port": details["port"],
        "dbname": details["dbname"],
        "user": details["user"],
        "password": details["password"],
        "sslmode": "require" if details["ssl"] else "prefer",
    }


def check_reader(details: dict[str, Any], *, connect_timeout_s: int = 10) -> list[str]:
    """Log in with ``details`` and read every view of the synced schema (no rows fetched);
    the session must be read-only by default. Returns the views read; raises
    :class:`RoleError` when the login reads nothing or may write."""
    schema = details["schema-filters-patterns"]
    with psycopg.connect(
        **details_conninfo(details), connect_timeout=connect_timeout_s, autocommit=True
    ) as conn:
        if conn.execute("SHOW default_transaction_read_only").fetchone() != ("on",):
            raise RoleError(f"role {details['user']}'s sessions are not read-only by default")
        views = [
            r[0]
            for r in conn.execute(
                "SELECT viewname FROM pg_views WHERE schemaname = %s ORDER BY viewname",
                (schema,),
            ).fetchall()
        ]
        if not views:
            raise RoleError(f"schema {schema} has no views for {details['user']} to read")
        for view in views:
            conn.execute(
                sql.SQL("SELECT * FROM {}.{} LIMIT 0").format(
                    sql.Identifier(schema), sql.Identifier(view)
                )
            )
    return views


# ------------------------------------------------------------------------------ PostgreSQL side


def prepare_database(settings: MetabaseSetupSettings) -> dict[str, Any]:
    """The reader role (created or its password reset; a member of cinepulse_readonly only,
    read-only sessions), Metabase's application database and owner when managed, then the
    reader's login checked with the very details ``provision`` sends."""
    mb = settings.metabase
    details = datasource_for(settings)
    pg: PostgresSettings = _need(settings.postgres, "CINEPULSE_POSTGRES__DSN")
    summary: dict[str, Any] = {"reader_role": mb.reader_role}
    with psycopg.connect(pg.dsn.get_secret_value(), autocommit=True, connect_timeout=10) as conn:
        summary["reader_created"] = ensure_login_role(
            conn, mb.reader_role, details["password"], member_of=READONLY_ROLE, read_only=True
        )
        if mb.app_database is not None:
            app = mb.app_database
            summary["app_user_created"] = ensure_login_role(
                conn, app.user, app.password.get_secret_value()
            )
            summary["app_database_created"] = ensure_owned_database(conn, app.name, app.user)
            summary["app_database"] = app.name
    summary["views_read"] = check_reader(details)
    return summary


def wait_database(
    settings: MetabaseSetupSettings,
    timeout_s: float | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Return once Metabase's application database accepts its owner's login; raise
    :class:`NotReady` after ``timeout_s`` (None: wait for ever, the pod's init step)."""
    say = progress or _stderr
    app: AppDatabaseSettings = _need(
        settings.metabase.app_database, "CINEPULSE_METABASE__APP_DATABASE__PASSWORD"
    )
    interval = settings.metabase.retry_interval_s
    start = time.monotonic()
    last_said = -1e9
    while True:
        try:
            with psycopg.connect(
                host=app.host,
                port=app.port,
                dbname=app.name,
                user=app.user,
                password=app.password.get_secret_value(),
                connect_timeout=5,
            ):
                return
        except psycopg.OperationalError as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        waited = time.monotonic() - start
        if timeout_s is not None and waited + interval > timeout_s:
            raise NotReady(
                f"database {app.name} at {app.host}:{app.port} does not accept {app.user} "
                f"after {timeout_s:g} s: {reason}"
            )
        if waited - last_said >= 30:
            say(f"waiting for database {app.name} at {app.host}:{app.port}: {reason}")
            last_said = waited
        time.sleep(interval)
