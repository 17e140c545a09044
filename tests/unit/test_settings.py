from __future__ import annotations

import pytest

from cinepulse_common.openapi import docs_routes
from cinepulse_common.settings import (
    CinepulseSettings,
    KafkaSettings,
    PostgresSettings,
    load_settings,
)


class DemoSettings(CinepulseSettings):
    kafka: KafkaSettings
    postgres: PostgresSettings


def test_nested_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("CINEPULSE_KAFKA__TOPIC_PREFIX", "dev.")
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:s3cr3t@db/cinepulse")
    s = load_settings(DemoSettings)
    assert s.kafka.topic("movie") == "dev.movie"
    assert "s3cr3t" not in repr(s)


def test_missing_required_values_exit_naming_each_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CINEPULSE_POSTGRES__DSN", raising=False)
    monkeypatch.delenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SystemExit) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert "CINEPULSE_KAFKA" in message and "CINEPULSE_POSTGRES" in message
    assert "Field required" in message


@pytest.mark.parametrize("dsn", ["postgresql://u:changeme@db/x", "postgresql://u:password@db/x"])
def test_placeholder_secrets_are_refused_in_production(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    monkeypatch.setenv("CINEPULSE_ENVIRONMENT", "production")
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", dsn)
    with pytest.raises(SystemExit, match="placeholder password"):
        load_settings(DemoSettings)
    monkeypatch.setenv("CINEPULSE_ENVIRONMENT", "development")
    assert load_settings(DemoSettings).environment == "development"


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [
        ("development", None, True),
        ("test", None, False),
        ("production", None, False),
        ("production", "true", True),
        ("test", "true", True),
        ("development", "false", False),
    ],
)
def test_docs_are_served_in_development_unless_set(
    monkeypatch: pytest.MonkeyPatch, environment: str, enabled: str | None, served: bool
) -> None:
    monkeypatch.setenv("CINEPULSE_ENVIRONMENT", environment)
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://u:s3cr3t@db/cinepulse")
    if enabled is None:
        monkeypatch.delenv("CINEPULSE_DOCS_ENABLED", raising=False)
    else:
        monkeypatch.setenv("CINEPULSE_DOCS_ENABLED", enabled)
    s = load_settings(DemoSettings)
    assert s.docs_served is served
    routes = docs_routes(s)
    if served:
        assert routes == {
            "openapi_url": "/openapi.json",
            "docs_url": "/docs",
            "redoc_url": "/redoc",
        }
    else:
        assert routes == {"openapi_url": None, "docs_url": None, "redoc_url": None}
