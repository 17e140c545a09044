"""A real single-node Kubernetes cluster on this machine, for the chart's end-to-end test
and the demo on Kubernetes: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, containerd (Debian's) with runc and the CNI bridge plugin, a real kubelet
and kube-proxy (iptables mode), and CoreDNS as a Deployment. The Kubernetes binaries and
CoreDNS are built from the Go module proxy by ``scripts/k8s-tools.sh``; images are built
with podman and imported into containerd (no registry can be reached here).

``make cluster-up`` / ``make cluster-down`` / ``make cluster-status``, or
``python -m cinepulse_devstack.cluster up|down|status|import REF...``. It extends the kwok
control plane of :mod:`cinepulse_devstack.kube` (fake nodes) with a node that runs
containers.

Everything is this cluster's own: its folders (``/var/lib/cinepulse-cluster``, images in
``~/.cache/cinepulse/cluster``), a containerd with its own socket, addresses of its own
interfaces; what it must change on the host (sysctls, iptables, mounts, cgroups) is
recorded at ``up`` and restored at ``down`` (:mod:`.host`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from cinepulse_devstack.cluster import configs, images
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.cluster.layout import NODE_NAME, Layout
from cinepulse_devstack.cluster.node import Node, missing_prerequisites

__all__ = [
    "KubeClient",
    "Layout",
    "Node",
    "client",
    "down",
    "missing_prerequisites",
    "status",
    "up",
]

Say = Callable[[str], None]


def _step(say: Say, what: str) -> float:
    say(f"==> [cluster {time.strftime('%H:%M:%S')}] {what}")
    return time.monotonic()


def client(provider: str = "local") -> KubeClient:
    """The cluster of a node provider: ``local`` (this machine's node) or ``kind``."""
    if provider == "kind":
        from cinepulse_devstack.cluster.kind import Kind

        return Kind()
    if provider != "local":
        raise ValueError(f"unknown node provider {provider!r} (local, kind)")
    return Node()


def up(node: Node | None = None, *, say: Say = print, extra_images: Iterable[str] = ()) -> Node:
    """Start (or check) every part; import the cluster's own images (sandbox, CoreDNS, the
    Prometheus operator's) and ``extra_images``."""
    node = node or Node()
    t_all = _step(say, "prerequisites, host record, certificates, configs")
    node.prepare(say)
    daemons = {d.name: d for d in node.daemons()}
    _step(say, "control plane: etcd, kube-apiserver, controller-manager, scheduler")
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        node.start(daemons[name], say)
    _step(say, "containerd, then the images (no registry: podman save -> ctr import)")
    node.start(daemons["containerd"], say)
    images.build_own_images(say)
    refs = [*images.own_images(), *extra_images]
    n = node.load_images(refs, say)
    say(f"{len(refs)} images on the node ({n} imported now)")
    _step(say, "kubelet, kube-proxy")
    node.start(daemons["kubelet"], say)
    say(node.wait_node_ready())
    node.start(daemons["kube-proxy"], say)
    _step(say, "CoreDNS")
    node.kubectl("apply", "-f", "-", stdin=configs.coredns_manifests(images.coredns_image()))
    node.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns",
                 "--timeout=180s", timeout=200)  # fmt: skip
    say("CoreDNS available at the cluster DNS address")
    say(f"cluster up in {time.monotonic() - t_all:.0f}s: node {NODE_NAME}; "
        f"export KUBECONFIG={node.layout.kubeconfig('admin')}")  # fmt: skip
    return node


def down(node: Node | None = None, *, say: Say = print) -> None:
    node = node or Node()
    t0 = _step(say, "stop containers, node, control plane; restore the host")
    node.down(say)
    say(f"cluster down in {time.monotonic() - t0:.0f}s")


def status(node: Node | None = None) -> list[tuple[str, bool, str]]:
    return (node or Node()).status()
