"""The gateway's rate limit as the chart renders it: on by default, per key, refused empty."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cinepulse_devstack import chart
from cinepulse_event_gateway.settings import DEFAULT_RATE_LIMIT

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in chart.scenarios()}


def _gateway_env(scenario: str, set_values: list[str] | None = None) -> dict[str, Any]:
    r = chart.render([SCENARIOS[scenario]], set_values or [])
    assert r.returncode == 0, r.stderr
    [gateway] = [
        d
        for d in chart.documents(r.stdout)
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway")
    ]
    [container] = gateway["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_the_default_limit_reaches_the_pod() -> None:
    env = _gateway_env("default")
    assert env["CINEPULSE_RATE_LIMIT"] == DEFAULT_RATE_LIMIT == "1000/10 seconds"
    assert "CINEPULSE_RATE_LIMITS" not in env


def test_a_key_of_its_own_and_an_unlimited_key_reach_the_pod() -> None:
    env = _gateway_env(
        "default", ["gateway.rateLimits.backend=unlimited", "gateway.rateLimits.ios=500/10 seconds"]
    )
    assert json.loads(env["CINEPULSE_RATE_LIMITS"]) == {
        "backend": "unlimited",
        "ios": "500/10 seconds",
    }
    assert env["CINEPULSE_RATE_LIMIT"] == "1000/10 seconds"


def test_the_clusters_own_client_is_never_throttled() -> None:
    env = _gateway_env("cluster")
    assert json.loads(env["CINEPULSE_RATE_LIMITS"]) == {"demo": "unlimited"}
    assert _gateway_env("external")["CINEPULSE_RATE_LIMIT"] == "2000/10 seconds"


def test_an_empty_limit_is_refused_naming_the_way_to_turn_it_off() -> None:
    r = chart.render([SCENARIOS["default"]], ["gateway.rateLimit="])
    assert r.returncode != 0
    assert "gateway.rateLimit: a limit such as 1000/10 seconds, or unlimited" in r.stderr
