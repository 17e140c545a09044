"""The local cluster's generated pieces, without starting anything: certificates (each
component's identity, the API server's names), containerd's, the CNI's and the kubelet's
configuration, the CoreDNS manifests, and which images a rendered chart names."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from cinepulse_devstack.cluster import configs, images, pki
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
