"""The configuration: documented defaults, the cinepulse_config Variable over them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from cinepulse_airflow import config, windows
from conftest import REPO


def test_defaults() -> None:
    cfg = config.load()
    assert cfg["namespace"] == "cinepulse"
    assert cfg.image("tmdb-fetcher") == "cinepulse/tmdb-fetcher:0.1.0"
    assert set(cfg["components"]) == {
        "tmdb-fetcher",
        "pandas-fallback",
        "spark-jobs",
        "recommender",
        "quality",
    }


def test_the_variable_from_the_environment_is_merged_over_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        config.ENV_VARIABLE,
        json.dumps(
            {
                "namespace": "prod",
                "components": {"quality": {"image": "q:2"}},
                "streaming": {"max_window_s": 60},
            }
        ),
    )
    cfg = config.load()
    assert cfg["namespace"] == "prod"
    assert cfg.image("quality") == "q:2"
    assert cfg.component("quality")["command"] == "cinepulse-quality"  # the rest kept
    assert cfg["streaming"]["max_window_s"] == 60
    assert cfg["streaming"]["heartbeat_max_age_s"] == 300


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"namespce": "x"}', "unknown key 'namespce'"),
        ('{"streaming": {"max_window": 1}}', "unknown key 'streaming.max_window'"),
        ("not json", "is not JSON"),
        ("[1]", "must be a JSON object"),
    ],
)
def test_mistakes_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv(config.ENV_VARIABLE, raw)
    with pytest.raises(config.ConfigError, match=message):
        config.load()


def test_each_component_reads_its_own_login_from_the_charts_logins_secret() -> None:
    """The defaults name the Secret and keys the chart generates with its bundled PostgreSQL
    (postgresql-logins-secret.yaml: <service>-dsn for each of its login services)."""
    tpl = (REPO / "charts/cinepulse/templates/_secrets.tpl").read_text()
    chart_services = re.search(r'define "cinepulse.postgresql.loginServices" -}}\n(.*)\n', tpl)
    assert chart_services is not None
    cfg = config.load()
    own = {
        "tmdb-fetcher": "fetcher",
        "pandas-fallback": "fallback",
        "spark-jobs": "spark",
        "recommender": "recommender",
        "quality": "quality",
    }
    for component, service in own.items():
        (name,) = [s for s in cfg.component(component)["secrets"] if s.startswith("postgres")]
        spec = cfg["secrets"][name]
        assert (spec["secret"], spec["key"], spec["env"]) == (
            f"{cfg['release']}-postgresql-logins",
            f"{service}-dsn",
            "CINEPULSE_POSTGRES__DSN",
        )
        assert service in chart_services.group(1).split()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # the owner's DSN of old: its override would be silently ignored
        (
            {"secrets": {"postgres": {"secret": "pg", "key": "dsn"}}},
            r"no component reads.*'postgres'",
        ),
        (
            {"components": {"quality": {"secrets": ["postgres-qa"]}}},
            r"undefined secrets \['postgres-qa'\]",
        ),
    ],
)
def test_secrets_no_component_reads_or_none_defines_are_refused(
    monkeypatch: pytest.MonkeyPatch, override: dict[str, object], message: str
) -> None:
    monkeypatch.setenv(config.ENV_VARIABLE, json.dumps(override))
    with pytest.raises(config.ConfigError, match=message):
        config.load()


def test_unknown_component() -> None:
    with pytest.raises(config.ConfigError, match="no component 'nope'"):
        config.load().component("nope")


def test_windows() -> None:
    at = datetime(2026, 11, 28, 0, 20, 7, tzinfo=UTC)
    assert windows.previous_day(at) == "2026-11-27"
    assert windows.settled_window(at, 900, 3600) == (
        "2026-11-27T23:00:00+00:00",
        "2026-11-28T00:00:00+00:00",
    )
    # settle not over yet: the hour before
    early = datetime(2026, 11, 28, 0, 10, tzinfo=UTC)
    assert windows.settled_window(early, 900, 3600)[1] == "2026-11-27T23:00:00+00:00"
