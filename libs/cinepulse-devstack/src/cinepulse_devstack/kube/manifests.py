"""What is applied before the release: fake nodes, the restricted namespace, Secret, volumes."""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from cinepulse_devstack.kube.constants import (
    NAMESPACE,
    NODE_ALLOCATABLE,
    NODES,
    VOLUME_SIZE,
    VOLUMES,
    WRITE_KEYS,
)


def nodes_manifest(count: int = NODES) -> str:
    """Fake nodes managed by kwok (its annotation), each with :data:`NODE_ALLOCATABLE`."""
    docs = []
    for i in range(count):
        name = f"kwok-node-{i}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "type": "kwok",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": NODE_ALLOCATABLE,
                    "capacity": NODE_ALLOCATABLE,
                    "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
                },
            }
        )
    return yaml.safe_dump_all(docs)


def restricted_namespace() -> dict[str, Any]:
    """The release's namespace, Pod Security "restricted" enforced by the API server (the
    kwok e2e's, the real node's and the demo on a cluster's)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def namespace_manifest() -> str:
    """The release's namespace (Pod Security "restricted" enforced by the API server), the
    write-keys Secret of ci/default-values.yaml, and hostPath volumes for the claims."""
    docs: list[dict[str, Any]] = [
        restricted_namespace(),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": WRITE_KEYS, "namespace": NAMESPACE},
            "type": "Opaque",
            "stringData": {"frontend": secrets.token_hex(32)},
        },
    ]
    for i in range(VOLUMES):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"e2e-pv-{i}"},
                "spec": {
                    "capacity": {"storage": VOLUME_SIZE},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/var/lib/cinepulse-e2e/pv-{i}"},
                },
            }
        )
    return yaml.safe_dump_all(docs)
