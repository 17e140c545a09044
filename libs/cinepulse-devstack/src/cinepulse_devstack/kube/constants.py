"""The end-to-end run's names, ports, fake nodes, volumes and the binaries it needs."""

from __future__ import annotations

#: the binaries scripts/k8s-tools.sh builds (its version stamps: .<name>.version)
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
)
CLUSTER = "cinepulse-e2e"
NAMESPACE = "cinepulse"
RELEASE = "cp"
#: ports on 127.0.0.1, clear of the local stack's (19092/19093, 15432, 27018, 18088, 19090,
#: 18080, 16066, 18300); the other components' ports are picked free by kwokctl
APISERVER_PORT = 16443
ETCD_PORT = 12379
#: fake nodes and what each offers (kwok's default node lacks ephemeral-storage, which every
#: Cinepulse container requests)
NODES = 3
NODE_ALLOCATABLE = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}
#: statically provisioned volumes for the claims (bundled Kafka, PostgreSQL, MongoDB, Spark
#: checkpoints): there is no storage provisioner on fake nodes
VOLUMES, VOLUME_SIZE = 6, "20Gi"
#: helm --wait timeouts
INSTALL_TIMEOUT = "5m"
WRITE_KEYS = "cinepulse-write-keys"
