"""The Helm chart on a real control plane (kube-apiserver, kube-controller-manager,
kube-scheduler and etcd built from the Go module proxy, fake nodes from kwok): install with
--wait, the checks, upgrade with --wait, kubeconform against the server's OpenAPI, uninstall
(README "Chart on a real control plane").
Skipped until ``bash scripts/k8s-tools.sh`` has built the binaries (``make chart-e2e`` builds
and runs it). Takes under a minute warm."""

from __future__ import annotations

import pytest

from cinepulse_devstack import chart, kube

missing = kube.missing_binaries()
if missing:
    pytest.skip(
        f"control-plane binaries not built ({', '.join(missing)}): run bash scripts/k8s-tools.sh",
        allow_module_level=True,
    )
try:
    chart.tool("helm")
    chart.tool("kubeconform")
except chart.ChartToolMissing as exc:  # make setup builds them
    pytest.skip(str(exc), allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> kube.Report:
    return kube.e2e(tmp_path_factory.mktemp("chart-e2e"))


@pytest.mark.timeout(1800)
def test_every_step_succeeds(report: kube.Report) -> None:
    assert report.ok, "\n" + report.table()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    "step",
    [
        "Pod Security enforced (control)",
        "helm install --wait",
        "Deployments available",
        "StatefulSets ready, claims bound",
        "CRs, NetworkPolicies, HPAs, PDBs accepted",
        "helm upgrade --wait (api.replicas=3)",
        "Deployments available after upgrade",
        "kubeconform vs the server's OpenAPI",
        "helm uninstall",
    ],
)
def test_step(report: kube.Report, step: str) -> None:
    done = {s.name: s for s in report.steps}
    assert step in done, f"not reached:\n{report.table()}"
    assert done[step].ok, done[step].detail
