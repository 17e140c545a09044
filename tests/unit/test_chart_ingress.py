"""The chart's optional Ingress: one per exposed service (its own host; TLS from an existing
Secret), valid for Kubernetes (kubeconform), the services' NetworkPolicies admitting the
ingress controller when clients are restricted, and nothing rendered when it is off."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

DEFAULT = next(p for p in chart.scenarios() if p.name == "default-values.yaml")
HOSTS = (
    "ingress.enabled=true",
    "ingress.className=traefik",
    "ingress.hosts.gateway=events.example.com",
    "ingress.hosts.api=api.example.com",
)


def render(*set_values: str) -> list[dict[str, Any]]:
    r = chart.render([DEFAULT], list(set_values))
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


def ingresses(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Ingress"}


def test_off_by_default() -> None:
    assert ingresses(render()) == {}


def test_one_ingress_per_service_with_a_host_routes_to_its_service() -> None:
    docs = render(*HOSTS, "ingress.tls.secretName=cinepulse-tls")
    found = ingresses(docs)
    gateway, api = (f"{chart.RELEASE}-cinepulse-{c}" for c in ("gateway", "api"))
    assert set(found) == {gateway, api}  # the recommender has no host: not exposed
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, host in ((gateway, "events.example.com"), (api, "api.example.com")):
        spec = found[name]["spec"]
        assert spec["ingressClassName"] == "traefik"
        assert spec["tls"] == [{"hosts": [host], "secretName": "cinepulse-tls"}]
        (rule,) = spec["rules"]
        assert rule["host"] == host
        (path,) = rule["http"]["paths"]
        backend = path["backend"]["service"]
        assert backend["name"] == name and backend["port"] == {"name": "http"}
        # the port it names is the Service's client port, not its metrics port
        ports = {p["name"]: p for p in services[name]["spec"]["ports"]}
        assert "http" in ports


def test_the_ingress_documents_are_valid_kubernetes() -> None:
    r = chart.render([DEFAULT], [*HOSTS, "ingress.tls.secretName=cinepulse-tls"])
    assert r.returncode == 0, r.stderr
    assert "kind: Ingress" in r.stdout
    check = chart.kubeconform(r.stdout)
    assert check.returncode == 0, check.stdout + check.stderr


def test_restricted_clients_still_admit_the_controller_to_exposed_services_only() -> None:
    clients = "networkPolicies.ingressFrom[0].podSelector.matchLabels.role=frontend"
    docs = render(*HOSTS, clients)
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}

    def admitted(component: str) -> list[dict[str, Any]]:
        policy = policies[f"{chart.RELEASE}-cinepulse-{component}-ingress"]
        return policy["spec"]["ingress"][0]["from"]

    assert controller in admitted("gateway") and controller in admitted("api")
    assert controller not in admitted("recommender")  # not exposed: no controller
    assert {"podSelector": {"matchLabels": {"role": "frontend"}}} in admitted("gateway")


def test_on_with_no_host_is_refused_with_the_reason() -> None:
    r = chart.render([DEFAULT], ["ingress.enabled=true"])
    assert r.returncode != 0
    assert "ingress.hosts names no host" in r.stderr
