"""The local cluster's generated pieces, without starting anything: certificates (each
component's identity, the API server's names), containerd's, the CNI's and the kubelet's
configuration, the CoreDNS manifests, the Prometheus operator's manifests and scrape pools,
and which images a rendered chart names."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from cinepulse_devstack.cluster import configs, images, monitoring, netpol, pki
from cinepulse_devstack.cluster.layout import (
    DNS_SERVICE_IP,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    PAUSE_IMAGE,
    Layout,
)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    root = tmp_path_factory.mktemp("cluster")
    lay = Layout(state=root / "state", images=root / "images")
    lay.state.mkdir()
    pki.make(lay)
    return lay


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_every_certificate_is_signed_by_the_cluster_ca(layout: Layout) -> None:
    for name in ["apiserver", "apiserver-kubelet-client", *pki.CLIENTS]:
        out = _openssl(
            "verify", "-CAfile", str(layout.pki / "ca.crt"), str(layout.pki / f"{name}.crt")
        )
        assert out.strip().endswith("OK"), name


@pytest.mark.parametrize(
    ("client", "subject"),
    [
        ("kubelet", f"O = system:nodes, CN = system:node:{NODE_NAME}"),
        ("admin", "O = system:masters, CN = cinepulse-admin"),
        ("kube-proxy", "CN = system:kube-proxy"),
    ],
)
def test_each_component_has_its_own_identity(layout: Layout, client: str, subject: str) -> None:
    out = _openssl("x509", "-in", str(layout.pki / f"{client}.crt"), "-noout", "-subject")
    assert out.strip() == f"subject={subject}"


def test_the_api_server_answers_to_its_in_cluster_names(layout: Layout) -> None:
    text = _openssl(
        "x509", "-in", str(layout.pki / "apiserver.crt"), "-noout", "-ext", "subjectAltName"
    )
    for name in (
        f"IP Address:{NODE_IP}",
        f"IP Address:{KUBERNETES_SERVICE_IP}",
        "DNS:kubernetes.default.svc",
    ):
        assert name in text


def test_private_keys_are_not_world_readable(layout: Layout) -> None:
    for key in layout.pki.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key


def test_kubeconfigs_point_at_the_node_address(layout: Layout) -> None:
    kc = yaml.safe_load(layout.kubeconfig("kubelet").read_text())
    assert kc["clusters"][0]["cluster"]["server"] == f"https://{NODE_IP}:6443"
    assert Path(kc["users"][0]["user"]["client-key"]).is_file()


def test_containerd_config_is_its_own(layout: Layout) -> None:
    conf = tomllib.loads(configs.containerd_toml(layout))
    assert conf["root"] == str(layout.images)
    assert conf["grpc"]["address"] == str(layout.containerd_socket)
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"] == str(layout.cni_conf)


def test_cni_keeps_its_leases_in_the_state_folder_and_adds_no_nat(layout: Layout) -> None:
    bridge = json.loads(configs.cni_conflist(layout))["plugins"][0]
    assert bridge["ipam"]["dataDir"] == str(layout.cni_ipam)
    assert bridge["ipMasq"] is False


def test_kubelet_config_fits_this_vm(layout: Layout) -> None:
    conf = yaml.safe_load(configs.kubelet_config(layout))
    assert conf["cgroupDriver"] == "cgroupfs" and conf["failCgroupV1"] is False
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["readOnlyPort"] == 0 and conf["address"] == NODE_IP
    assert conf["clusterDNS"] == [DNS_SERVICE_IP]


def test_coredns_runs_restricted_behind_the_dns_address() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(configs.coredns_manifests("img:1"))}
    assert docs["Service"]["spec"]["clusterIP"] == DNS_SERVICE_IP
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["imagePullPolicy"] == "Never"


def test_images_in_a_rendered_manifest() -> None:
    manifest = yaml.safe_dump_all(
        [
            {"kind": "Deployment", "spec": {"template": {"spec": {
                "initContainers": [{"name": "i", "image": "a:1"}],
                "containers": [{"name": "c", "image": "b:2"}]}}}},
            {"kind": "SparkApplication", "spec": {"image": "c:3", "driver": {"cores": 1}}},
        ]
    )  # fmt: skip
    assert images.images_in(manifest) == ["a:1", "b:2", "c:3"]


@pytest.fixture
def operator_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the operator's module: its example ClusterRoles."""
    rbac = tmp_path / "example" / "rbac"
    for sub, name in [("prometheus-operator", "prometheus-operator-cluster-role.yaml"),
                      ("prometheus", "prometheus-cluster-role.yaml")]:  # fmt: skip
        (rbac / sub).mkdir(parents=True)
        (rbac / sub / name).write_text(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
            "metadata: {name: upstream, namespace: default}\n"
            "rules: [{apiGroups: [''], resources: [pods], verbs: [list]}]\n"
        )
    monkeypatch.setattr(monitoring, "module_dir", lambda: tmp_path)
    return tmp_path


def test_the_operator_and_prometheus_run_restricted_and_read_everything(
    operator_module: Path,
) -> None:
    docs = list(yaml.safe_load_all(monitoring.manifests("op:1", "reloader:1", "prom:3.5.0")))
    by_kind = {d["kind"]: d for d in docs}
    ns = by_kind["Namespace"]["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert (
        c["imagePullPolicy"] == "Never" and "--prometheus-config-reloader=reloader:1" in c["args"]
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    spec = by_kind["Prometheus"]["spec"]
    assert spec["version"] == "v3.5.0"
    assert spec["image"] == "prom:3.5.0"
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}Selector"] == {} and spec[f"{kind}NamespaceSelector"] == {}
    roles = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"]
    assert roles == ["cinepulse:prometheus-operator", "cinepulse:prometheus"]
    for b in (d for d in docs if d["kind"] == "ClusterRoleBinding"):
        assert b["subjects"][0]["namespace"] == monitoring.MONITORING_NS


def test_scrape_pools_of_the_monitors() -> None:
    monitors = [
        {"kind": "ServiceMonitor", "metadata": {"namespace": "ns", "name": "api"},
         "spec": {"endpoints": [{"port": "http"}, {"port": "admin"}]}},
        {"kind": "PodMonitor", "metadata": {"namespace": "ns", "name": "spark"},
         "spec": {"podMetricsEndpoints": [{"port": "metrics"}]}},
    ]  # fmt: skip
    assert monitoring.expected_pools(monitors) == {
        "serviceMonitor/ns/api/0",
        "serviceMonitor/ns/api/1",
        "podMonitor/ns/spark/0",
    }


def test_the_reloader_is_where_the_operator_starts_it() -> None:
    # the operator's pod spec runs /bin/prometheus-config-reloader (pkg/operator/config_reloader.go)
    assert (
        images.SCRATCH_BINARIES["prometheus-config-reloader"][1]
        == "/bin/prometheus-config-reloader"
    )


def test_network_policies_evaluated_like_an_enforcing_cni() -> None:
    pod = {
        "metadata": {"name": "api-1", "namespace": "cinepulse", "labels": {"c": "api"}},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000}]}]},
    }
    deny = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    metrics = {"spec": {
        "podSelector": {"matchExpressions": [{"key": "c", "operator": "In", "values": ["api"]}]},
        "ingress": [
            {"ports": [{"port": "http"}], "from": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]},
            {"ports": [{"port": 9000, "endPort": 9010}], "from": [{"podSelector": {}}]},
        ]}}  # fmt: skip
    prom = netpol.Peer("monitoring", {"team": "obs"}, {"app": "prometheus"}, "10.244.0.9")
    other = netpol.Peer("default", {}, {}, "10.244.0.10")
    neighbour = netpol.Peer("cinepulse", {}, {}, "10.244.0.11")
    assert netpol.admits([], pod, 8000, other)  # selected by no policy: not isolated
    assert not netpol.admits([deny], pod, 8000, prom)
    assert netpol.admits([deny, metrics], pod, 8000, prom)  # the named port
    assert not netpol.admits([deny, metrics], pod, 8000, other)
    assert not netpol.admits([deny, metrics], pod, 8001, prom)
    assert netpol.admits([deny, metrics], pod, 9005, neighbour)  # podSelector: own namespace
    assert not netpol.admits([deny, metrics], pod, 9005, prom)
