"""The Metabase provisioning client (``cinepulse_metabase``) against a stand-in.

:class:`~tests.unit.metabase_standin.FakeMetabase` is NOT Metabase (Metabase cannot run on
these machines: no image registry, not on Maven Central): an in-process HTTP server of only
the API calls the client makes, with the behaviour read in Metabase's source (see that
module). The questions and dashboards are tested in ``test_metabase_content.py``. What
Metabase itself does with the datasource is checked against the real PostgreSQL in
``tests/integration/test_metabase_datasource.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

import cinepulse_metabase as metabase
from cinepulse_common.settings import PostgresSettings
from cinepulse_metabase import (
    MetabaseError,
    MetabaseSettings,
    MetabaseSetupSettings,
    NotReady,
    datasource_details,
    details_conninfo,
    provision,
)
from tests.unit.metabase_standin import FakeMetabase

OWNER_PASSWORD = "owner-Secret-1"  # the warehouse owner's: must never reach Metabase
WAREHOUSE_DSN = f"postgresql://cinepulse:{OWNER_PASSWORD}@pg.cinepulse.svc:5432/cinepulse"
ADMIN_PASSWORD = "Adm1n-generated-password"
READER_PASSWORD = "reader-generated-password"


@pytest.fixture
def fake() -> Iterator[FakeMetabase]:
    yield from FakeMetabase().serve()


def _settings(url: str, **overrides: Any) -> MetabaseSetupSettings:
    mb: dict[str, Any] = {
        "url": url,
        "admin_email": "admin@cinepulse.example.com",
        "admin_password": ADMIN_PASSWORD,
        "reader_password": READER_PASSWORD,
        "ready_timeout_s": 5,
        "retry_interval_s": 0.05,
        "request_timeout_s": 5,
    } | overrides
    return MetabaseSetupSettings(
        postgres=PostgresSettings(dsn=SecretStr(WAREHOUSE_DSN)),
        metabase=MetabaseSettings(**mb),
    )


def _quiet(_: str) -> None:
    pass


def test_the_datasource_is_the_warehouse_read_as_the_reader() -> None:
    details = datasource_details(
        WAREHOUSE_DSN + "?sslmode=verify-full", "cinepulse_metabase", "r-pw"
    )
    assert details == {
        "host": "pg.cinepulse.svc",
        "port": 5432,
        "dbname": "cinepulse",
        "user": "cinepulse_metabase",
        "password": "r-pw",
        "ssl": True,
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": "analytics",
        "tunnel-enabled": False,
        "advanced-options": False,
    }
    assert OWNER_PASSWORD not in json.dumps(details)
    plain = datasource_details("host=db dbname=w user=o password=x", "r", "p", "s")
    assert (plain["port"], plain["ssl"], plain["schema-filters-patterns"]) == (5432, False, "s")
    assert details_conninfo(plain) == {
        "host": "db",
        "port": 5432,
        "dbname": "w",
        "user": "r",
        "password": "p",
        "sslmode": "prefer",
    }
    for dsn in ("postgresql:///cinepulse", "postgresql://a,b/cinepulse", "postgresql://db"):
        with pytest.raises(metabase.ConfigError):
            datasource_details(dsn, "r", "p")


def test_a_fresh_metabase_gets_its_admin_and_the_datasource(fake: FakeMetabase) -> None:
    summary = provision(_settings(fake.url), progress=_quiet)
    assert summary["set_up"] is True and summary["action"] == "created"
    assert fake.users == {"admin@cinepulse.example.com": ADMIN_PASSWORD}
    assert fake.settings["anon-tracking-enabled"] is False
    assert fake.settings["site-name"] == "Cinepulse"
    ((db_id, db),) = fake.databases.items()
    assert summary["database_id"] == db_id
    assert db["name"] == "Cinepulse warehouse" and db["engine"] == "postgres"
    assert db["details"] == datasource_details(WAREHOUSE_DSN, "cinepulse_metabase", READER_PASSWORD)
    # the owner's credentials never leave: no request carries them
    assert OWNER_PASSWORD not in json.dumps(fake.calls)
    assert summary["reader"] == "cinepulse_metabase@pg.cinepulse.svc:5432/cinepulse"
    # setup, not a login, opened the session
    assert ("POST", "/api/session") not in [(m, p) for m, p, _ in fake.calls]


def test_a_set_up_metabase_is_updated_in_place_and_runs_are_idempotent(
    fake: FakeMetabase,
) -> None:
    provision(_settings(fake.url), progress=_quiet)
    first = json.loads(json.dumps(fake.databases))
    fake.settings["anon-tracking-enabled"] = True  # someone turned it on in the UI
    fake.calls.clear()
    again = provision(_settings(fake.url), progress=_quiet)
    assert again["set_up"] is False and again["action"] == "updated"
    assert ("POST", "/api/session") in [(m, p) for m, p, _ in fake.calls]
    assert "/api/setup" not in [p for _, p, _ in fake.calls]
    assert json.loads(json.dumps(fake.databases)) == first  # the same one database
    assert fake.settings["anon-tracking-enabled"] is False
    # a rotated reader password reaches the existing datasource, still one database
    provision(_settings(fake.url, reader_password="rotated"), progress=_quiet)
    ((db_id, db),) = fake.databases.items()
    assert db_id == again["database_id"] and db["details"]["password"] == "rotated"


def test_an_instance_set_up_by_someone_else_meanwhile_is_logged_into(
    fake: FakeMetabase,
) -> None:
    # the properties still say "not set up", but the admin exists by the time of /api/setup
    original = fake._answer

    def racing(method: str, path: str, body: Any, session: str | None) -> tuple[int, Any]:
        if path == "/api/setup":
            fake.users["admin@cinepulse.example.com"] = ADMIN_PASSWORD
        return original(method, path, body, session)

    fake._answer = racing  # type: ignore[method-assign]
    summary = provision(_settings(fake.url), progress=_quiet)
    assert summary["set_up"] is False and summary["action"] == "created"


def test_a_wrong_admin_password_is_a_clear_refusal(
    fake: FakeMetabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.users["admin@cinepulse.example.com"] = "changed-in-the-UI-1"
    with pytest.raises(MetabaseError, match="refused the admin login of admin@cinepulse"):
        provision(_settings(fake.url), progress=_quiet)
    assert fake.databases == {}
    # the command: exit 1, the fix in the message, no password in it
    _env(monkeypatch, fake.url)
    assert metabase.main(["provision"]) == metabase.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "CINEPULSE_METABASE__ADMIN_PASSWORD" in err and "admin-password" in err
    assert ADMIN_PASSWORD not in err and "changed-in-the-UI-1" not in err


def test_metabase_not_ready_is_retried_until_it_answers(fake: FakeMetabase) -> None:
    fake.unhealthy_answers = 4
    said: list[str] = []
    summary = provision(_settings(fake.url), progress=said.append)
    assert fake.health_calls == 5 and summary["action"] == "created"
    assert said and "initializing" in said[0]


def test_metabase_never_ready_gives_up_at_the_deadline(
    fake: FakeMetabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.never_ready = True
    with pytest.raises(NotReady, match=r"did not become ready within 0.5 s .*HTTP 503"):
        provision(_settings(fake.url, ready_timeout_s=0.5), progress=_quiet)
    assert fake.health_calls > 3 and fake.users == {}
    _env(monkeypatch, fake.url, CINEPULSE_METABASE__READY_TIMEOUT_S="0.3")
    assert metabase.main(["provision"]) == metabase.EXIT_UNREACHABLE
    assert "did not become ready within 0.3 s" in capsys.readouterr().err


def test_nothing_listening_is_retried_then_reported() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NotReady, match=r"URLError: .*refused"):
        provision(_settings(f"http://127.0.0.1:{port}", ready_timeout_s=0.3), progress=_quiet)


def test_a_datasource_metabase_cannot_reach_is_refused(fake: FakeMetabase) -> None:
    fake.refuse_datasource = True
    with pytest.raises(MetabaseError, match=r"refused the datasource .*could not connect") as info:
        provision(_settings(fake.url), progress=_quiet)
    assert READER_PASSWORD not in str(info.value)


def _env(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    for name, value in {
        "CINEPULSE_POSTGRES__DSN": WAREHOUSE_DSN,
        "CINEPULSE_METABASE__URL": url,
        "CINEPULSE_METABASE__ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CINEPULSE_METABASE__READER_PASSWORD": READER_PASSWORD,
        "CINEPULSE_METABASE__RETRY_INTERVAL_S": "0.05",
        **extra,
    }.items():
        monkeypatch.setenv(name, value)


def test_the_command_prints_one_summary_line(
    fake: FakeMetabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, fake.url)
    assert metabase.main(["provision"]) == metabase.EXIT_OK
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["action"] == "created"


def test_a_missing_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, "http://127.0.0.1:9")
    monkeypatch.delenv("CINEPULSE_METABASE__ADMIN_PASSWORD")
    assert metabase.main(["provision"]) == metabase.EXIT_USAGE
    assert "CINEPULSE_METABASE__ADMIN_PASSWORD is required" in capsys.readouterr().err
    monkeypatch.setenv("CINEPULSE_METABASE__URL", "ftp://x")
    assert metabase.main(["provision"]) == metabase.EXIT_USAGE
    assert "CINEPULSE_METABASE__URL" in capsys.readouterr().err
    monkeypatch.delenv("CINEPULSE_METABASE__URL")
    monkeypatch.delenv("CINEPULSE_METABASE__READER_PASSWORD")
    assert metabase.main(["prepare-database"]) == metabase.EXIT_USAGE
    assert "CINEPULSE_METABASE__READER_PASSWORD is required" in capsys.readouterr().err
