"""Where the local cluster lives: its addresses, ports and folders, in one place.

Every address is this machine's own. The API server and the kubelet listen on
:data:`NODE_IP`, an address of an interface the cluster adds (an empty bridge) (pods cannot reach the
host's loopback, and nothing outside this machine routes to it); pods get addresses of
:data:`POD_CIDR` on the cluster's own bridge; Services get :data:`SERVICE_CIDR`, which only
kube-proxy's rules on this machine resolve.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cinepulse_common.paths import default_cache

NODE_NAME = "cinepulse-node"
#: the interface carrying NODE_IP (a bridge without ports), and the pods' bridge (names of at most 15 bytes)
DUMMY_IFACE = "cinepulse0"
BRIDGE_IFACE = "cinepulse-br0"
NODE_IP = "10.245.0.1"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
#: the first address of SERVICE_CIDR: the `kubernetes` Service (in the API server's cert)
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 6443
#: etcd on loopback, clear of the kwok control plane's (12379) and the local stack's ports
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 22379, 22380
KUBELET_PORT, KUBELET_HEALTHZ_PORT = 10250, 10248
KUBE_PROXY_METRICS_PORT, KUBE_PROXY_HEALTHZ_PORT = 10249, 10256
#: the sandbox ("pause") and DNS images the cluster builds itself (no registry here)
PAUSE_IMAGE = "localhost/cinepulse/pause:1.0"
COREDNS_IMAGE_REPO = "localhost/cinepulse/coredns"
#: the Prometheus operator's images, built FROM scratch like CoreDNS (cluster.monitoring)
PROMETHEUS_OPERATOR_IMAGE_REPO = "localhost/cinepulse/prometheus-operator"
CONFIG_RELOADER_IMAGE_REPO = "localhost/cinepulse/prometheus-config-reloader"
PROMETHEUS_IMAGE_REPO = "localhost/cinepulse/prometheus-server"
#: the Alertmanager the operator runs for that Prometheus (cluster.alerting)
ALERTMANAGER_IMAGE_REPO = "localhost/cinepulse/alertmanager"
#: the ingress controller in front of the chart's Ingresses (cluster.ingress)
TRAEFIK_IMAGE_REPO = "localhost/cinepulse/traefik"


@dataclass(frozen=True)
class Layout:
    """The cluster's folders. ``state`` holds everything one cluster run writes (PKI,
    configs, etcd, the kubelet's and containerd's run-time state, logs) and is removed by
    ``down``; ``images`` (containerd's content store) is kept in the cache, so images
    imported once are not imported again."""

    state: Path
    images: Path

    @classmethod
    def default(cls) -> Layout:
        # outside the checkout on purpose: the kubelet mounts tmpfs and bind mounts below
        # its root, and nothing may ever `rm -rf .stack` through a mount left by a crash
        state = Path(os.environ.get("CINEPULSE_CLUSTER_STATE", "/var/lib/cinepulse-cluster"))
        return cls(state=state, images=default_cache() / "cluster" / "containerd")

    # -- derived paths ------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        """pid files and sockets"""
        return self.state / "run"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def static_pods(self) -> Path:
        return self.state / "manifests"

    @property
    def cni_conf(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def volumes(self) -> Path:
        """hostPath PersistentVolumes (a one-node cluster has no storage provisioner)"""
        return self.state / "volumes"

    @property
    def host_record(self) -> Path:
        """what cluster-up found on the host, for cluster-down to restore"""
        return self.state / "host-before.json"

    def kubeconfig(self, user: str = "admin") -> Path:
        return self.state / f"{user}.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{NODE_IP}:{APISERVER_PORT}"
