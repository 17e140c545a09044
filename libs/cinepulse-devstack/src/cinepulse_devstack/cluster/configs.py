"""The node's configuration files: containerd, the CNI network, the kubelet, CoreDNS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cinepulse_devstack.cluster.layout import (
    BRIDGE_IFACE,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    KUBELET_HEALTHZ_PORT,
    KUBELET_PORT,
    NODE_IP,
    PAUSE_IMAGE,
    POD_CIDR,
    Layout,
)

CNI_BIN_DIR = "/usr/lib/cni"


def containerd_toml(layout: Layout) -> str:
    """containerd 1.6 (Debian's) with its own root, state and socket, so it never meets a
    containerd of the host. ``restrict_oom_score_adj``: this VM lacks CAP_SYS_RESOURCE, so a
    container may not lower its OOM score; ``SystemdCgroup = false``: PID 1 is not systemd."""
    return f"""version = 2
root = "{layout.images}"
state = "{layout.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.state / "containerd-opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf}"
"""


def cni_conflist(layout: Layout) -> str:
    """One bridge with the node's pod subnet. No IP masquerade and no port mapping: pods
    talk only to each other and to this machine, so the plugins add no iptables rules; the
    IPAM's leases live in the cluster's state folder, not in /var/lib/cni."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "cinepulse",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE_IFACE,
                    "isGateway": True,
                    "ipMasq": False,
                    # a pod reaching itself through a Service address comes back on its port
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.cni_ipam),
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=1,
    )


def kubelet_config(layout: Layout) -> str:
    """The KubeletConfiguration for this VM: cgroupfs (no systemd), cgroup v1 accepted
    (hybrid hierarchy), swap tolerated, eviction and image GC relaxed for a small shared
    disk; authentication by client certificate and webhook, no anonymous access, no
    read-only port."""
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "staticPodPath": str(layout.static_pods),
        "podLogsDir": str(layout.pod_logs),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # 100: never delete images to free disk (they cannot be pulled back here)
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 110,
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_all(layout: Layout) -> None:
    for d in (layout.cni_conf, layout.cni_ipam, layout.static_pods, layout.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    (layout.state / "containerd.toml").write_text(containerd_toml(layout))
    (layout.cni_conf / "10-cinepulse.conflist").write_text(cni_conflist(layout))
    (layout.state / "kubelet.yaml").write_text(kubelet_config(layout))


def coredns_manifests(image: str) -> str:
    """CoreDNS as a Deployment behind the cluster DNS address, non-root on port 1053 (the
    Service maps 53 to it), answering for the cluster domain only: nothing here resolves
    beyond this machine."""
    labels = {"k8s-app": "kube-dns"}
    corefile = f""".:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
    meta = {"namespace": "kube-system", "labels": labels}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "cinepulse:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "cinepulse:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cinepulse:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 1053},
                                    {"name": "metrics", "containerPort": 9153},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "20m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", **meta},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def pv_manifests(layout: Layout, count: int, size: str) -> str:
    """hostPath PersistentVolumes for the chart's claims (no provisioner on one node)."""
    docs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"cinepulse-pv-{i}", "labels": {"cinepulse.io/local": "true"}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(layout.volumes / f"pv-{i}"), "type": "Directory"},
            },
        }
        for i in range(count)
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
