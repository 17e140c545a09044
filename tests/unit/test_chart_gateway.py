"""The gateway as the chart renders it: the rate limit (on by default, per key, refused
empty) and the write keys' roles with the api's user token secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cinepulse_devstack import chart
from cinepulse_event_gateway.settings import DEFAULT_RATE_LIMIT, DEFAULT_USER_RATE_LIMIT

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
    assert env["CINEPULSE_USER_RATE_LIMIT"] == DEFAULT_USER_RATE_LIMIT == "500/10 seconds"
    turned_off = _gateway_env("default", ["gateway.userRateLimit=unlimited"])
    assert turned_off["CINEPULSE_USER_RATE_LIMIT"] == "unlimited"


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


def _containers_env(scenario: str, set_values: list[str]) -> dict[str, dict[str, Any]]:
    """The gateway's and the api's env entries by name, from one render."""
    r = chart.render([SCENARIOS[scenario]], set_values)
    assert r.returncode == 0, r.stderr
    out = {}
    for d in chart.documents(r.stdout):
        component = d["metadata"]["name"].rsplit("-", 1)[-1]
        if d["kind"] == "Deployment" and component in ("gateway", "api"):
            [container] = d["spec"]["template"]["spec"]["containers"]
            out[component] = {e["name"]: e for e in container.get("env", [])}
    return out


def test_write_key_roles_and_the_apis_user_token_secret_reach_the_gateway() -> None:
    """Events bound to users: the roles (a key not listed is frontend) and the user token
    secret from the very Secret the api reads it from."""
    env = _containers_env(
        "default",
        ["gateway.auth.roles.backend=server", "api.auth.userTokenSecret=cinepulse-user-tokens"],
    )
    gateway, api = env["gateway"], env["api"]
    assert json.loads(gateway["CINEPULSE_AUTH__WRITE_ROLES"]["value"]) == {"backend": "server"}
    secret = gateway["CINEPULSE_AUTH__USER_TOKEN_SECRET"]
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "cinepulse-user-tokens", "key": "secret"}
    assert secret == api["CINEPULSE_AUTH__USER_TOKEN_SECRET"]


def test_by_default_every_write_key_is_frontend_and_no_secret_is_passed() -> None:
    env = _gateway_env("default")
    assert "CINEPULSE_AUTH__WRITE_ROLES" not in env
    assert "CINEPULSE_AUTH__ROLES" not in env  # the api's read roles: never the gateway's
    assert "CINEPULSE_AUTH__USER_TOKEN_SECRET" not in env


def test_the_clusters_replays_and_helm_test_are_server_keys() -> None:
    env = _gateway_env("cluster")
    assert json.loads(env["CINEPULSE_AUTH__WRITE_ROLES"]) == {
        "demo": "server",
        "helm-test": "server",
    }


def test_a_role_the_gateway_does_not_know_is_refused() -> None:
    r = chart.render([SCENARIOS["default"]], ["gateway.auth.roles.web=internal"])
    assert r.returncode != 0
    assert "roles" in r.stderr
