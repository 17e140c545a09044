"""PostgreSQL client factories (psycopg 3): one-off connections and async pools, each with
the service's application name and statement timeout set on every session."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from cinepulse_common.settings import PostgresSettings


def conninfo(s: PostgresSettings) -> str:
    return s.dsn.get_secret_value()


def _session_options(s: PostgresSettings) -> dict[str, Any]:
    return {
        "application_name": s.application_name,
        "options": f"-c statement_timeout={s.statement_timeout_ms}",
    }


def connect(s: PostgresSettings, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(conninfo(s), **(_session_options(s) | kwargs))


async def connect_async(s: PostgresSettings, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(conninfo(s), **(_session_options(s) | kwargs))


def _pool_options(s: PostgresSettings, **kwargs: Any) -> dict[str, Any]:
    options = {
        "min_size": s.pool_min_size,
        "max_size": s.pool_max_size,
        "kwargs": _session_options(s),
    }
    return options | kwargs


def make_pool(s: PostgresSettings, **kwargs: Any) -> ConnectionPool:
    return ConnectionPool(conninfo(s), open=True, **_pool_options(s, **kwargs))


def make_async_pool(s: PostgresSettings, **kwargs: Any) -> AsyncConnectionPool:
    """An unopened pool: ``await pool.open()`` in the app's lifespan."""
    return AsyncConnectionPool(conninfo(s), open=False, **_pool_options(s, **kwargs))


def check_postgres(s: PostgresSettings) -> None:
    with connect(s, connect_timeout=2) as conn:
        conn.execute("SELECT 1")


# ------------------------------------------------------------------ roles for read-only tools

#: the NOLOGIN role of migration 0008: USAGE on schema ``analytics`` and SELECT on its views,
#: nothing else. A tool (the explorer, Metabase) logs in as its own role made a member of it.
READONLY_ROLE = "cinepulse_readonly"

#: role attributes a tool's login role must never carry (each would reach past the views)
_POWERS = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")


class RoleError(RuntimeError):
    """A role or database cannot be made as asked; the message says why."""


class MissingRole(RoleError):
    """The group role a login role should join does not exist (the migrations have not run)."""


def ensure_login_role(
    conn: psycopg.Connection[Any],
    role: str,
    password: str,
    *,
    member_of: str | None = None,
    read_only: bool = False,
) -> bool:
    """Make ``role`` a LOGIN role with ``password``: created, or its password reset (so a
    rotated Secret takes effect on the next run). With ``member_of`` it is granted that role
    and must be a member of no other; with ``read_only`` its sessions default to
    ``default_transaction_read_only`` (a role's settings are not inherited by its members, so
    the login role needs its own: migration 0008). An existing role holding a power a tool's
    login must not have (superuser, CREATEROLE, CREATEDB, replication, BYPASSRLS) or another
    membership is refused, never silently kept. ``conn`` is an autocommit session of a role
    that may create roles. Returns whether the role was created."""
    from psycopg import sql

    if (
        member_of is not None
        and not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (member_of,)).fetchone()
    ):
        raise MissingRole(f"role {member_of} does not exist (migration 0008 creates it)")
    row = conn.execute(
        f"SELECT {', '.join(_POWERS)} FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    if row is not None:
        powers = [name.removeprefix("rol") for name, held in zip(_POWERS, row, strict=True) if held]
        if powers:
            raise RoleError(
                f"role {role} exists with {', '.join(powers)}: a tool's login must have none "
                "(drop it or use another role name)"
            )
        others = [
            r[0]
            for r in conn.execute(
                "SELECT g.rolname FROM pg_auth_members m"
                " JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member"
                " WHERE r.rolname = %s",
                (role,),
            ).fetchall()
            if r[0] != member_of
        ]
        if others:
            raise RoleError(
                f"role {role} is also a member of {', '.join(sorted(others))}: it would read "
                "more than it should (revoke that membership or use another role name)"
            )
    verb = "ALTER" if row is not None else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    if member_of is not None:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(role))
        )
    if read_only:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(role)
            )
        )
    return row is None


def ensure_owned_database(conn: psycopg.Connection[Any], name: str, owner: str) -> bool:
    """Database ``name`` owned by ``owner`` (created when missing), which no other role may
    connect to (CONNECT and TEMP revoked from PUBLIC; superusers still can). One owned by
    another role is refused, never taken over. ``conn`` is an autocommit session of a role
    that may create databases. Returns whether it was created."""
    from psycopg import sql

    row = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    if row is not None and row[0] != owner:
        raise RoleError(f"database {name} exists and belongs to {row[0]}, not {owner}")
    if row is None:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    return row is None
