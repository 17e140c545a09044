"""The explorer's login without a provider: the ``oidc`` settings (every piece or none), the
``[auth]`` secrets Streamlit reads, the internal role, and the page (Streamlit's AppTest)
serving a visitor who is not logged in nothing but the login button. With a real provider
and a browser: ``tests/integration/test_explorer_login.py``."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cinepulse_common.settings import PostgresSettings, load_settings
from cinepulse_explorer import __main__ as cli
from cinepulse_explorer import auth
from cinepulse_explorer.settings import ExplorerSettings, OidcSettings

NO_DB = "postgresql://u:p@127.0.0.1:9/none?connect_timeout=1"

OIDC_ENV = {
    "CINEPULSE_OIDC__SERVER_METADATA_URL": "https://idp.example.com/.well-known/openid-configuration",
    "CINEPULSE_OIDC__CLIENT_ID": "explorer",
    "CINEPULSE_OIDC__CLIENT_SECRET": 'se"cr\\et',
    "CINEPULSE_OIDC__REDIRECT_URI": "https://explorer.example.com/oauth2callback",
    "CINEPULSE_OIDC__COOKIE_SECRET": "c" * 40,
}


@pytest.fixture(autouse=True)
def fresh_page_caches() -> Iterator[None]:
    """The page's settings are an ``st.cache_resource`` of the process: each test here reads
    its own environment, and leaves no login behind for the other page tests."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def _oidc(**changes: str) -> OidcSettings:
    values = {k.removeprefix("CINEPULSE_OIDC__").lower(): v for k, v in OIDC_ENV.items()}
    return OidcSettings.model_validate({**values, **changes})


def _env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", NO_DB)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_no_oidc_variable_no_login(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, {})
    assert ExplorerSettings().oidc is None


def test_every_oidc_variable_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, OIDC_ENV)
    oidc = ExplorerSettings().oidc
    assert oidc is not None
    assert (oidc.client_id, oidc.internal_claim, oidc.internal_value) == (
        "explorer",
        "groups",
        "cinepulse-internal",
    )
    assert oidc.client_secret.get_secret_value() == 'se"cr\\et'
    assert 'se"cr' not in repr(oidc)  # secrets stay masked in reprs and logs


def test_a_missing_piece_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    partial = {
        k: v for k, v in OIDC_ENV.items() if not k.endswith(("CLIENT_SECRET", "COOKIE_SECRET"))
    }
    _env(monkeypatch, partial)
    with pytest.raises(SystemExit) as refused:
        load_settings(ExplorerSettings)
    message = str(refused.value)
    assert "CINEPULSE_OIDC__CLIENT_SECRET: Field required" in message
    assert "CINEPULSE_OIDC__COOKIE_SECRET: Field required" in message
    assert "CINEPULSE_OIDC__CLIENT_ID" not in message
    # the command stops before Streamlit starts, with the same names
    with pytest.raises(SystemExit, match="CINEPULSE_OIDC__CLIENT_SECRET"):
        cli.main([])


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CINEPULSE_OIDC__COOKIE_SECRET", "too-short"),
        ("CINEPULSE_OIDC__REDIRECT_URI", "https://explorer.example.com/"),
        ("CINEPULSE_OIDC__SERVER_METADATA_URL", "idp.example.com"),
        ("CINEPULSE_OIDC__CLIENT_ID", ""),
    ],
)
def test_a_bad_piece_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    _env(monkeypatch, {**OIDC_ENV, variable: value})
    with pytest.raises(SystemExit, match=f"{variable}: "):
        load_settings(ExplorerSettings)


def test_the_secrets_are_streamlits_auth_section_in_a_private_file(tmp_path: Path) -> None:
    oidc = _oidc()
    path = auth.write_secrets(oidc, parent=tmp_path)
    assert path.parent.parent == tmp_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text()) == {
        "auth": {
            "redirect_uri": "https://explorer.example.com/oauth2callback",
            "cookie_secret": "c" * 40,
            "client_id": "explorer",
            "client_secret": 'se"cr\\et',  # quotes and backslashes escaped
            "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
        }
    }
    settings = ExplorerSettings(postgres=PostgresSettings(dsn=NO_DB), oidc=oidc)
    args = cli.streamlit_args(settings, "127.0.0.1", 18501, path)
    assert f"--secrets.files={path}" in args
    assert not any(a.startswith("--secrets") for a in cli.streamlit_args(settings, "h", 1))


@pytest.mark.parametrize(
    ("claims", "internal"),
    [
        ({"groups": ["analysts", "cinepulse-internal"]}, True),
        ({"groups": "cinepulse-internal"}, True),
        ({"groups": ["analysts"]}, False),
        ({"groups": "cinepulse-internal-not"}, False),
        ({"groups": None}, False),
        ({"email": "cinepulse-internal"}, False),
        ({}, False),
    ],
)
def test_the_internal_role(claims: dict[str, object], internal: bool) -> None:
    assert auth.is_internal(claims, _oidc()) is internal
    other = _oidc(internal_claim="roles", internal_value="ops")
    assert auth.is_internal({"roles": ["ops"]}, other) and not auth.is_internal(claims, other)


def test_a_visitor_not_logged_in_gets_the_login_button_and_no_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _env(monkeypatch, OIDC_ENV)
    at = AppTest.from_file(str(cli.APP), default_timeout=30)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert at.info[0].value.startswith("Log in to explore")
    # the database (down here) was never asked: its failure would be an error
    assert not at.error and not at.tabs


def test_a_logged_in_user_reaches_the_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, OIDC_ENV)
    at = AppTest.from_file(str(cli.APP), default_timeout=30)
    at.user = {"is_logged_in": True, "email": "ana@example.com", "groups": ["analysts"]}
    at.run()
    assert not at.exception
    assert "Log in" not in [b.label for b in at.button]
    assert "Logged in as ana@example.com" in [c.value for c in at.sidebar.caption]
    assert at.error[0].value.startswith("The warehouse cannot be read: ")
