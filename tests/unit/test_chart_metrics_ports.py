"""Issue 20, "metrics share the HTTP port": each long-running service serves /metrics on a
port of its own (named ``metrics`` on the pod and the Service, scraped by its
ServiceMonitor), and the NetworkPolicies admit Prometheus (its namespace AND its pods, one
peer) to that port only: never to a port the service's clients use, so the archiver's
"api only" rule holds. Every scenario rendered is valid (kubeconform, strict)."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart
from tests.unit.chart_support import DEFAULT, SCENARIOS, require_tools

require_tools("helm", "kubeconform")

SERVICES = ("gateway", "archiver", "api", "recommender", "explorer")
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _docs(*sets: str, scenario: str = "default") -> list[dict[str, Any]]:
    r = chart.render([SCENARIOS[scenario]], list(sets))
    assert r.returncode == 0, r.stderr
    v = chart.kubeconform(r.stdout)
    assert v.returncode == 0, v.stdout + v.stderr
    return chart.documents(r.stdout)


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _policies(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        d["metadata"]["name"]: d["spec"].get("ingress", [])
        for d in docs
        if d["kind"] == "NetworkPolicy"
    }


def _ports(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule["ports"]}


def _from_prometheus(rule: dict[str, Any]) -> bool:
    """A rule naming Prometheus' namespace (the ingress controller's namespace, in the
    external scenario, is a peer with a namespaceSelector alone)."""
    return any(
        peer.get("namespaceSelector") == PROMETHEUS["namespaceSelector"]
        or set(peer) == {"namespaceSelector", "podSelector"}
        for peer in rule.get("from", [])
    )


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return _docs()


@pytest.mark.parametrize("component", SERVICES)
def test_each_service_serves_metrics_on_a_port_of_its_own(
    docs: list[dict[str, Any]], component: str
) -> None:
    name = f"{chart.RELEASE}-cinepulse-{component}"
    (container,) = _one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9464 != ports["http"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CINEPULSE_METRICS_PORT"] == "9464"  # the service's settings.metrics_port
    service = {p["name"]: p for p in _one(docs, "Service", name)["spec"]["ports"]}
    assert service["metrics"]["port"] == 9464
    assert service["metrics"]["targetPort"] == "metrics"
    (endpoint,) = _one(docs, "ServiceMonitor", name)["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    # the probes stay on the service's own port
    assert container["readinessProbe"]["httpGet"]["port"] == "http"


@pytest.mark.parametrize("component", SERVICES)
def test_the_metrics_port_is_admitted_only_from_prometheus(
    docs: list[dict[str, Any]], component: str
) -> None:
    ingress = _policies(docs)[f"{chart.RELEASE}-cinepulse-{component}-ingress"]
    scrapes = [rule for rule in ingress if _from_prometheus(rule)]
    # one rule, one peer with both selectors (two peers would admit either)
    assert scrapes == [{"ports": [{"port": 9464, "protocol": "TCP"}], "from": [PROMETHEUS]}]
    # the service's port is never opened to Prometheus' namespace (nor to any namespace),
    # and no other rule admits anyone to the metrics port
    for rule in ingress:
        if rule is not scrapes[0]:
            assert 9464 not in _ports(rule), rule
            assert not any("namespaceSelector" in peer for peer in rule.get("from", [])), rule


def test_the_archivers_api_only_rule_holds(docs: list[dict[str, Any]]) -> None:
    ingress = _policies(docs)[f"{chart.RELEASE}-cinepulse-archiver-ingress"]
    counters, scrape = ingress
    assert _ports(counters) == {6066}
    assert counters["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/instance": chart.RELEASE,
                    "app.kubernetes.io/component": "api",
                }
            }
        }
    ]
    assert _ports(scrape) == {9464} and scrape["from"] == [PROMETHEUS]
    # no rule of the release's policies opens a port without naming it
    for rules in _policies(docs).values():
        for rule in rules:
            assert rule.get("ports"), rule


def test_the_spark_driver_and_the_pushgateway_take_the_same_prometheus_peer(
    docs: list[dict[str, Any]],
) -> None:
    policies = _policies(docs)
    *_, spark = policies[f"{chart.RELEASE}-cinepulse-spark-ingress"]
    assert spark == {"ports": [{"port": 9108, "protocol": "TCP"}], "from": [PROMETHEUS]}
    push, scrape = policies[f"{chart.RELEASE}-cinepulse-pushgateway-ingress"]
    assert scrape["from"] == [PROMETHEUS] and not _from_prometheus(push)


def test_prometheus_selectors_and_ports_come_from_the_values() -> None:
    # Helm merges maps: a default label is dropped with null (docs/operations/chart.md)
    docs = _docs(
        "networkPolicies.prometheus.namespaceSelector.matchLabels.team=obs",
        r"networkPolicies.prometheus.namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=null",
        "networkPolicies.prometheus.podSelector.matchLabels.app=prom",
        r"networkPolicies.prometheus.podSelector.matchLabels.app\.kubernetes\.io/name=null",
        "api.metricsPort=9100",
    )
    api = _policies(docs)[f"{chart.RELEASE}-cinepulse-api-ingress"]
    (scrape,) = [r for r in api if _from_prometheus(r)]
    assert scrape == {
        "ports": [{"port": 9100, "protocol": "TCP"}],
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"team": "obs"}},
                "podSelector": {"matchLabels": {"app": "prom"}},
            }
        ],
    }
    (container,) = _one(docs, "Deployment", f"{chart.RELEASE}-cinepulse-api")["spec"]["template"][
        "spec"
    ]["containers"]
    assert {"name": "CINEPULSE_METRICS_PORT", "value": "9100"} in container["env"]


def test_a_metrics_port_equal_to_the_service_port_is_refused() -> None:
    r = chart.render([DEFAULT], ["archiver.metricsPort=6066"])
    assert r.returncode != 0
    assert "archiver.metricsPort (6066) must differ from archiver.port" in r.stderr
    # and the old all-namespaces selector is gone from the values (the schema refuses it)
    old = chart.render([DEFAULT], ["networkPolicies.prometheusNamespaceSelector.x=y"])
    assert old.returncode != 0


def test_the_external_scenario_keeps_prometheus_to_its_namespace_and_pods() -> None:
    policies = _policies(_docs(scenario="external"))
    for component in ("gateway", "api", "recommender", "explorer"):
        ingress = policies[f"{chart.RELEASE}-cinepulse-{component}-ingress"]
        scrapes = [r for r in ingress if _from_prometheus(r)]
        assert [s["from"] for s in scrapes] == [[PROMETHEUS]], component


def test_kubernetes_semantics_admit_prometheus_to_the_metrics_port_alone(
    docs: list[dict[str, Any]],
) -> None:
    """The rendered policies, evaluated as a cluster enforcing them would
    (:mod:`cinepulse_devstack.cluster.netpol`, which the real-node e2e applies to its live
    Prometheus): Prometheus reaches each pod's metrics port; a pod of the monitoring
    namespace that is not Prometheus does not, nor a pod labelled prometheus elsewhere; and
    Prometheus does not reach the archiver's counters (its clients: the api only)."""
    from cinepulse_devstack.cluster.netpol import Peer, admits

    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    prometheus_labels = {"app.kubernetes.io/name": "prometheus"}
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    prometheus = Peer("monitoring", monitoring, prometheus_labels, "10.0.0.9")
    grafana = Peer("monitoring", monitoring, {"app.kubernetes.io/name": "grafana"}, "10.0.0.8")
    impostor = Peer(
        "default", {"kubernetes.io/metadata.name": "default"}, prometheus_labels, "10.0.0.7"
    )
    for component in SERVICES:
        name = f"{chart.RELEASE}-cinepulse-{component}"
        template = _one(docs, "Deployment", name)["spec"]["template"]
        pod = {
            "metadata": {"labels": template["metadata"]["labels"], "namespace": "cinepulse"},
            "spec": template["spec"],
        }
        assert admits(policies, pod, 9464, prometheus), component
        assert not admits(policies, pod, 9464, grafana), component
        assert not admits(policies, pod, 9464, impostor), component
        if component == "archiver":
            assert not admits(policies, pod, 6066, prometheus)
            assert not admits(policies, pod, 6066, grafana)
