"""Metabase (open-source edition) over the analytics views, set up from code. The chart's
hook Job (``metabase.enabled``) runs, in this order::

  python -m cinepulse_common.metabase prepare-database
      the warehouse side, as the warehouse's owner (CINEPULSE_POSTGRES__DSN): the LOGIN role
      Metabase reads as (a member of cinepulse_readonly and of nothing else, read-only
      sessions), Metabase's own application database and its owner role when the chart
      manages them; then it logs in as the reader with the datasource details below and
      reads every analytics view
  python -m cinepulse_common.metabase provision
      Metabase's side, through its HTTP API: the first admin on a fresh instance (or a login
      as that admin), then the warehouse datasource created, or updated in place (idempotent)

and Metabase's own pod first runs ``wait-database`` (its application database is created by
that hook, after install). Every command prints one JSON summary line on stdout and its
progress on stderr.

Metabase OSS reads no configuration file (``config.yml`` is a Pro/Enterprise feature:
https://www.metabase.com/docs/latest/configuring-metabase/config-file), hence the API. What
is relied on, read in Metabase's source (github.com/metabase/metabase: the files named) and
https://www.metabase.com/docs/latest/api (also the walkthrough "Set up Metabase from code
with the API", https://www.metabase.com/articles/set-up-metabase-from-code-with-the-api,
checked by Metabase against v0.63 and v0.64):

* ``GET /api/health``: 200 ``{"status": "ok"}`` once initialised; 503 while it starts and
  migrates its application database.
* ``GET /api/session/properties`` (no session): the public settings, among them
  ``has-user-setup`` (a boolean) and ``setup-token`` (src/metabase/setup/settings.clj).
* ``POST /api/setup`` ``{"token", "user": {"email", "password", "first_name", "last_name"},
  "prefs": {"site_name"}}``: the first admin, answered with ``{"id": <session>}``; 403 once a
  user exists (src/metabase/setup/api.clj). Current versions take no ``database`` there
  (v0.46's reference still listed one), so the datasource is added as on any instance.
* ``POST /api/session`` ``{"username", "password"}``: ``{"id": <session>}``; 401 for a wrong
  password, 400 "Too many attempts" once throttled (src/metabase/session/api.clj). Later
  calls carry the session in the ``X-Metabase-Session`` header.
* ``GET /api/database``: ``{"data": [...], "total": n}`` (a bare list in old versions: both
  are read). ``POST /api/database`` ``{"name", "engine", "details", "is_full_sync", ...}`` and
  ``PUT /api/database/:id`` (same keys) test the connection first and answer 400 with
  ``{"message": ...}`` when Metabase cannot connect (src/metabase/warehouses/api.clj). The
  ``postgres`` details: ``host``, ``port``, ``dbname``, ``user``, ``password``, ``ssl`` and
  ``schema-filters-type`` / ``schema-filters-patterns`` (only the analytics schema is synced).
* ``PUT /api/setting/anon-tracking-enabled`` ``{"value": false}``: ``POST /api/setup`` turns
  Metabase's anonymous usage tracking on; it is turned off again on every run.

Settings (:class:`MetabaseSetupSettings`, one class for the three commands): the warehouse
``CINEPULSE_POSTGRES__DSN``; ``CINEPULSE_METABASE__URL``, ``__ADMIN_EMAIL``,
``__ADMIN_PASSWORD``, ``__READER_ROLE``, ``__READER_PASSWORD``, ``__DATASOURCE_NAME``,
``__SCHEMA_NAME``, ``__READY_TIMEOUT_S``, ...; Metabase's application database
``CINEPULSE_METABASE__APP_DATABASE__{NAME,USER,PASSWORD,HOST,PORT}`` (when the chart manages
it). A command names the variable it misses.

Exit codes: 0 done; 1 refused (a wrong admin password, a datasource Metabase cannot connect
to, a role or database that cannot be made); 2 bad configuration; 4 Metabase or PostgreSQL
did not answer in time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, Field, SecretStr, field_validator

from cinepulse_common.postgres import (
    READONLY_ROLE,
    RoleError,
    ensure_login_role,
    ensure_owned_database,
)
from cinepulse_common.settings import CinepulseSettings, PostgresSettings, load_settings

PROG = "cinepulse-metabase"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 4

# ------------------------------------------------------------------------------ settings


class AppDatabaseSettings(BaseModel):
    """Metabase's application database (its users, questions, dashboards) in the warehouse's
    PostgreSQL server, owned by its own LOGIN role: what the chart manages when it generates
    Metabase's credentials."""

    name: str = "metabase"
    user: str = "metabase"
    password: SecretStr
    #: where Metabase reaches it (``wait-database``); ``prepare-database`` makes it on the
    #: server of CINEPULSE_POSTGRES__DSN
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)


class MetabaseSettings(BaseModel):
    #: Metabase's base URL (in the cluster: its Service)
    url: str = "http://127.0.0.1:3000"
    #: the first admin, made on a fresh instance; later runs log in as that admin
    admin_email: str = "admin@cinepulse.example.com"
    admin_password: SecretStr | None = None
    admin_first_name: str = "Cinepulse"
    admin_last_name: str = "Admin"
    site_name: str = "Cinepulse"
    #: the warehouse's name in Metabase: the database of that name is created or updated
    datasource_name: str = "Cinepulse warehouse"
    #: the LOGIN role Metabase reads the warehouse as (a member of cinepulse_readonly only)
    reader_role: str = "cinepulse_metabase"
    reader_password: SecretStr | None = None
    #: the one schema Metabase syncs and the reader may read
    schema_name: str = "analytics"
    app_database: AppDatabaseSettings | None = None
    #: how long ``provision`` waits for /api/health (the first start migrates Metabase's DB)
    ready_timeout_s: float = Field(600.0, gt=0)
    retry_interval_s: float = Field(5.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class MetabaseSetupSettings(CinepulseSettings):
    #: the warehouse, as its owner (a role that may create roles and databases)
    postgres: PostgresSettings | None = None
    metabase: MetabaseSettings = Field(default_factory=MetabaseSettings)


class ConfigError(ValueError):
    """A setting a command needs is missing; the message names its variable."""


def _need(value: Any, variable: str) -> Any:
    if value is None:
        raise ConfigError(f"{variable} is required")
    return value


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


# ------------------------------------------------------------------------------ Metabase side


class MetabaseError(RuntimeError):
    """Metabase refused something; the message says what and how to fix it."""


class NotReady(MetabaseError):
    """Metabase (or a database) did not answer in time."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class MetabaseClient:
    """The few calls ``provision`` makes: JSON in, JSON out, the session header once logged
    in. No proxy from the environment is used (Metabase is a Service of the cluster)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """One request; an HTTP error status is an :class:`Answer` too. A connection that
        fails raises :class:`OSError` (``urllib.error.URLError``, a timeout)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s)
            self.url + path, data=data, method=method
        )
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.session:
            request.add_header("X-Metabase-Session", self.session)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(status, parsed)


def _why(answer: Answer, secrets: Iterable[str] = ()) -> str:
    """A short reason from an error answer, with no secret in it."""
    body = answer.body
    reason = (body.get("message") or body.get("errors") or body) if isinstance(body, dict) else body
    text = f"HTTP {answer.status}: {reason if isinstance(reason, str) else json.dumps(reason)}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:400]


def wait_until_ready(
    client: MetabaseClient,
    timeout_s: float,
    interval_s: float,
    *,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Poll ``/api/health`` until ``{"status": "ok"}``; :class:`NotReady` after ``timeout_s``
    with the last answer (or connection error) in the message."""
    say = progress or _stderr
    start = time.monotonic()
    last_said = -1e9
    while True:
        try:
            answer = client.call("GET", "/api/health")
            if (
                answer.status == 200
                and isinstance(answer.body, dict)
                and answer.body.get("status") == "ok"
            ):
                return
            last = _why(answer)
        except OSError as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        waited = time.monotonic() - start
        if waited + interval_s > timeout_s:
            raise NotReady(
                f"Metabase at {client.url} did not become ready within {timeout_s:g} s "
                f"(last answer of /api/health: {last})"
            )
        if waited - last_said >= 30:
            say(f"waiting for Metabase at {client.url}: {last}")
            last_said = waited
        time.sleep(interval_s)


def _expect(answer: Answer, what: str, secrets: Iterable[str] = ()) -> Any:
    if answer.status not in (200, 204):
        raise MetabaseError(f"Metabase refused to {what}: {_why(answer, secrets)}")
    return answer.body


def _login(client: MetabaseClient, email: str, password: str) -> str:
    answer = client.call("POST", "/api/session", {"username": email, "password": password})
    if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
        return str(answer.body["id"])
    raise MetabaseError(
        f"Metabase refused the admin login of {email} ({_why(answer, [password])}): "
        "CINEPULSE_METABASE__ADMIN_PASSWORD (the chart: key admin-password of Metabase's "
        "Secret) is not that admin's password, or the admin has another email (was it changed "
        "in Metabase?). Put the current password in the Secret, or reset the admin's password "
        "in Metabase, then upgrade again"
    )


def _upsert_database(client: MetabaseClient, name: str, details: dict[str, Any]) -> tuple[int, str]:
    secrets = [details["password"]]
    listing = _expect(client.call("GET", "/api/database"), "list its databases", secrets)
    rows = listing.get("data", []) if isinstance(listing, dict) else (listing or [])
    same = sorted((r for r in rows if r.get("name") == name), key=lambda r: int(r["id"]))
    payload = {
        "name": name,
        "engine": "postgres",
        "details": details,
        "is_full_sync": True,
        "is_on_demand": False,
        "auto_run_queries": True,
    }
    if same:
        action, answer = "updated", client.call("PUT", f"/api/database/{same[0]['id']}", payload)
    else:
        action, answer = "created", client.call("POST", "/api/database", payload)
    if answer.status != 200 or not isinstance(answer.body, dict) or "id" not in answer.body:
        where = f"{details['user']}@{details['host']}:{details['port']}/{details['dbname']}"
        raise MetabaseError(
            f"Metabase refused the datasource {name!r} ({where}): {_why(answer, secrets)}"
        )
    return int(answer.body["id"]), action


def provision(
    settings: MetabaseSetupSettings, *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Wait for Metabase, make the first admin on a fresh instance (else log in as it), turn
    the anonymous tracking off, and create or update the warehouse datasource."""
    mb = settings.metabase
    admin_password: SecretStr = _need(mb.admin_password, "CINEPULSE_METABASE__ADMIN_PASSWORD")
    password = admin_password.get_secret_value()
    details = datasource_for(settings)
    secrets = [password, details["password"]]
    client = MetabaseClient(mb.url, mb.request_timeout_s)
    wait_until_ready(client, mb.ready_timeout_s, mb.retry_interval_s, progress=progress)

    props = _expect(client.call("GET", "/api/session/properties"), "show its properties")
    set_up = False
    if not (isinstance(props, dict) and props.get("has-user-setup")):
        token = props.get("setup-token") if isinstance(props, dict) else None
        if not token:
            raise MetabaseError("Metabase has no user yet and offers no setup token")
        answer = client.call(
            "POST",
            "/api/setup",
            {
                "token": token,
                "user": {
                    "email": mb.admin_email,
                    "password": password,
                    "first_name": mb.admin_first_name,
                    "last_name": mb.admin_last_name,
                },
                "prefs": {"site_name": mb.site_name, "allow_tracking": False},
            },
        )
        if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("id"):
            client.session, set_up = str(answer.body["id"]), True
        elif answer.status != 403:  # 403: another run made the admin meanwhile; log in
            raise MetabaseError(f"Metabase refused the first admin: {_why(answer, secrets)}")
    if client.session is None:
        client.session = _login(client, mb.admin_email, password)

    _expect(
        client.call("PUT", "/api/setting/anon-tracking-enabled", {"value": False}),
        "turn its anonymous tracking off",
        secrets,
    )
    database_id, action = _upsert_database(client, mb.datasource_name, details)
    return {
        "metabase": mb.url,
        "admin": mb.admin_email,
        "set_up": set_up,
        "datasource": mb.datasource_name,
        "database_id": database_id,
        "action": action,
        "reader": f"{details['user']}@{details['host']}:{details['port']}/{details['dbname']}",
        "schema": mb.schema_name,
    }


# ------------------------------------------------------------------------------ CLI


def _stderr(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cinepulse_common.metabase",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare-database", help="the reader role and Metabase's own database")
    sub.add_parser("provision", help="the first admin and the warehouse datasource, by API")
    wait = sub.add_parser("wait-database", help="wait for Metabase's application database")
    wait.add_argument("--timeout", type=float, help="seconds (default: wait for ever)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(MetabaseSetupSettings)
    except SystemExit as exc:  # load_settings names each bad variable
        print(exc.code, file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "prepare-database":
            summary = prepare_database(settings)
        elif args.command == "provision":
            summary = provision(settings)
        else:
            wait_database(settings, args.timeout)
            summary = {"database": "ready"}
    except ConfigError as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_USAGE
    except NotReady as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_UNREACHABLE
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _stderr(f"{args.command}: PostgreSQL unreachable: {reason}")
        return EXIT_UNREACHABLE
    except (MetabaseError, RoleError, psycopg.Error) as exc:
        _stderr(f"{args.command}: {exc}")
        return EXIT_REFUSED
    except OSError as exc:  # Metabase went away after it was ready
        _stderr(f"{args.command}: Metabase unreachable: {exc}")
        return EXIT_UNREACHABLE
    print(json.dumps(summary, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
