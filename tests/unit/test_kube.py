"""The pieces of the chart's end-to-end run (cinepulse_devstack.kube) that need no cluster:
the fake nodes and namespace fixtures, and the kubeconform schemas derived from a server's
OpenAPI v2 document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cinepulse_devstack import kube


def test_missing_binaries_lists_every_tool_of_an_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kube.missing_binaries() == list(kube.BINARIES)
    d = kube.bin_dir()
    d.mkdir(parents=True)
    for name in kube.BINARIES:
        (d / name).write_text("#!/bin/sh\n")
        (d / name).chmod(0o755)
    (d / ".kubectl.version").write_text("v1.34.4\n")
    assert "kubectl" not in kube.missing_binaries()
    assert "kube-apiserver" in kube.missing_binaries()  # no version stamp: not built by us


def test_fake_nodes_offer_what_the_chart_requests() -> None:
    nodes = list(yaml.safe_load_all(kube.nodes_manifest(2)))
    assert [n["metadata"]["name"] for n in nodes] == ["kwok-node-0", "kwok-node-1"]
    for n in nodes:
        assert n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        # every Cinepulse container requests ephemeral-storage; kwok's default node has none
        assert "ephemeral-storage" in n["status"]["allocatable"]


def test_namespace_enforces_restricted_and_carries_the_write_keys() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(kube.namespace_manifest())}
    labels = docs["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert docs["Secret"]["metadata"]["name"] == kube.WRITE_KEYS
    assert len(docs["Secret"]["stringData"]["frontend"]) == 64


SWAGGER = {
    "definitions": {
        "io.k8s.api.apps.v1.Deployment": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": "apps", "kind": "Deployment", "version": "v1"}
            ],
        },
        "io.k8s.api.apps.v1.DeploymentSpec": {
            "type": "object",
            "properties": {
                "maxSurge": {
                    "$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
                },
                "cpu": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
            },
        },
        "io.k8s.api.core.v1.Service": {
            "type": "object",
            "properties": {"kind": {"type": "string"}},
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Service", "version": "v1"}],
        },
        "io.k8s.api.networking.v1.NetworkPolicy": {
            "type": "object",
            "properties": {},
            "x-kubernetes-group-version-kind": [
                {"group": "networking.k8s.io", "kind": "NetworkPolicy", "version": "v1"}
            ],
        },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
            "type": "string",
            "format": "int-or-string",
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
    }
}


def test_openapi_schemas_are_standalone_strict_and_named_for_kubeconform(tmp_path: Path) -> None:
    assert kube.openapi_schemas(SWAGGER, tmp_path) == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "deployment-apps-v1.json",
        "networkpolicy-networking-v1.json",
        "service-v1.json",
    ]
    dep = json.loads((tmp_path / "deployment-apps-v1.json").read_text())
    spec = dep["properties"]["spec"]
    assert "$ref" not in json.dumps(dep)
    assert dep["additionalProperties"] is False and spec["additionalProperties"] is False
    assert spec["properties"]["maxSurge"]["oneOf"] == [{"type": "string"}, {"type": "integer"}]
    assert {"type": "number"} in spec["properties"]["cpu"]["oneOf"]
