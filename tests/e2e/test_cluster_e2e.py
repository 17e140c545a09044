"""The chart on a real Kubernetes node (containerd, kubelet, kube-proxy, CoreDNS; our
images; docs/operations/cluster.md): install with real pods, helm test, the real Prometheus
operator scraping the chart's monitors and loading its rules, the batch Jobs' pushes in
Prometheus, one of the chart's alerts received by the operator's Alertmanager, events end to end,
the chart's Ingresses served by a real Traefik (by host; events through it archived),
a rolling upgrade under load with nothing acknowledged lost, every Airflow DAG's
KubernetesPodOperator tasks as real pods (airflow/tests/test_cluster_pods.py), uninstall, then
the host as it was. About 10 minutes warm. It fails, never skips, when something it needs is missing:
``make setup`` and ``make images-all`` provide everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepulse_devstack import cluster
from cinepulse_devstack.cluster import airflow_pods, e2e, host
from cinepulse_devstack.cluster.layout import BRIDGE_IFACE, DUMMY_IFACE


@pytest.fixture(scope="module")
def before() -> host.HostRecord:
    missing = cluster.missing_prerequisites()
    assert not missing, "the real cluster cannot run here:\n" + "\n".join(missing)
    return host.record()


@pytest.fixture(scope="module")
def report(before: host.HostRecord, tmp_path_factory: pytest.TempPathFactory) -> e2e.ClusterReport:
    return e2e.e2e(progress=print)


@pytest.mark.timeout(3600)
def test_every_step_succeeds(report: e2e.ClusterReport) -> None:
    assert report.ok, "\n" + report.table()


@pytest.mark.timeout(3600)
@pytest.mark.parametrize(
    "step",
    [
        "Prometheus operator and Prometheus (CRDs: Spark's, Prometheus')",
        "Alertmanager (the operator's); Prometheus sends to it",
        "Traefik ingress controller (IngressClass traefik)",
        "Pod Security enforced (control)",
        "helm install --wait (real pods)",
        "real containers: non-root, read-only root, no restart",
        "Spark streaming: driver and executor pods",
        "helm test",
        "Prometheus scrapes every Cinepulse target; rules loaded",
        "migrations ran (the install's Job)",
        "events: gateway -> Kafka -> MongoDB + Spark -> PostgreSQL -> api",
        "requests through the Traefik ingress: gateway, api, recommender",
        "helm upgrade rolls the gateway under load",
        "the demo's steps: TMDB Job, replay, aggregates, training, reconciliation",
        "batch Jobs' metrics: Pushgateway -> Prometheus (honorLabels)",
        "an alert of the chart fired on purpose reaches Alertmanager",
        "Airflow DAGs: KubernetesPodOperator pods on the node",
        *(f"Airflow DAG {dag}: its pods on the node" for dag in airflow_pods.DAGS),
        "helm uninstall",
        "cluster down, host restored",
    ],
)
def test_step(report: e2e.ClusterReport, step: str) -> None:
    done = {s.name: s for s in report.steps}
    assert step in done, f"not reached:\n{report.table()}"
    assert done[step].ok, done[step].detail


def test_nothing_acknowledged_is_lost(report: e2e.ClusterReport) -> None:
    assert report.traffic, "no events were sent"
    for t in report.traffic:
        assert t.acknowledged > 0 and t.lost == 0, t


def test_host_restored(report: e2e.ClusterReport, before: host.HostRecord) -> None:
    after = host.record()
    assert after.sysctls == before.sysctls
    for iface in (BRIDGE_IFACE, DUMMY_IFACE):
        assert not Path(f"/sys/class/net/{iface}").exists(), f"{iface} left behind"
    assert not host.mounts_below("/var/lib/cinepulse-cluster", "/run/netns"), "mounts left"
    assert sorted(after.existed) == sorted(before.existed)
    for tool, saved in before.iptables.items():
        chains = {
            line.split()[0] for line in after.iptables[tool].splitlines() if line.startswith(":")
        }
        kube = sorted(c for c in chains if c.startswith(":KUBE"))
        assert not kube or any(c in saved for c in kube), f"{tool}: chains left: {kube}"
