"""The api's and the recommender's rate limits as the chart renders them: on by default with
the services' own defaults, a client's own limit as JSON, turned off, an empty limit refused,
and the rendered variables accepted by the settings they feed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cinepulse_common.read_limits import (
    DEFAULT_ANONYMOUS,
    DEFAULT_PER_CLIENT,
    ReadRateLimitSettings,
)
from cinepulse_devstack import chart

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in chart.scenarios()}
SERVICES = ("api", "recommender")
PREFIX = "CINEPULSE_RATE_LIMIT__"


def _limit_env(service: str, set_values: list[str] | None = None) -> dict[str, Any]:
    r = chart.render([SCENARIOS["default"]], set_values or [])
    assert r.returncode == 0, r.stderr
    [deployment] = [
        d
        for d in chart.documents(r.stdout)
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(f"-{service}")
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = container.get("env", [])
    return {e["name"]: e.get("value") for e in env if e["name"].startswith(PREFIX)}


def _settings(env: dict[str, Any]) -> ReadRateLimitSettings:
    """What the service reads from these variables (pydantic-settings decodes the JSON)."""
    fields = {name.removeprefix(PREFIX).lower(): value for name, value in env.items()}
    if "clients" in fields:
        fields["clients"] = json.loads(fields["clients"])
    return ReadRateLimitSettings.model_validate(fields)


@pytest.mark.parametrize("service", SERVICES)
def test_the_default_limits_reach_the_pod(service: str) -> None:
    env = _limit_env(service)
    assert env == {
        f"{PREFIX}ENABLED": "true",
        f"{PREFIX}PER_CLIENT": DEFAULT_PER_CLIENT,
        f"{PREFIX}ANONYMOUS": DEFAULT_ANONYMOUS,
    }
    assert _settings(env) == ReadRateLimitSettings()


@pytest.mark.parametrize("service", SERVICES)
def test_a_clients_own_limit_and_turning_them_off(service: str) -> None:
    env = _limit_env(
        service,
        [
            f"{service}.rateLimit.clients.explorer=unlimited",
            f"{service}.rateLimit.clients.partner=60/minute",
            f"{service}.rateLimit.perClient=50/second",
        ],
    )
    assert json.loads(env[f"{PREFIX}CLIENTS"]) == {"explorer": "unlimited", "partner": "60/minute"}
    settings = _settings(env)
    assert (settings.per_client, settings.clients["partner"]) == ("50/second", "60/minute")
    off = _limit_env(service, [f"{service}.rateLimit.enabled=false"])
    assert off[f"{PREFIX}ENABLED"] == "false" and not _settings(off).enabled


@pytest.mark.parametrize("service", SERVICES)
def test_an_empty_limit_is_refused_by_the_chart(service: str) -> None:
    r = chart.render([SCENARIOS["default"]], [f"{service}.rateLimit.perClient="])
    assert r.returncode != 0
    assert "perClient" in r.stderr
