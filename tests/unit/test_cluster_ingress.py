"""The real node's Traefik (cinepulse_devstack.cluster.ingress) and the cluster values that
point the chart's Ingresses at it, without starting anything: a class, namespace or label
that no longer matches must fail here, not after half an hour on the node."""

from __future__ import annotations

from typing import Any

import yaml

from cinepulse_devstack.cluster import images, ingress, netpol, release


def _docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(ingress.manifests("traefik:3.7.13"))}


def test_traefik_runs_restricted_on_unprivileged_ports() -> None:
    docs = _docs()
    ns = docs["Namespace"]
    assert ns["metadata"]["name"] == ingress.INGRESS_NS
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["image"] == "traefik:3.7.13" and c["imagePullPolicy"] == "Never"
    assert c["securityContext"] == {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    assert all(p["containerPort"] >= 1024 for p in c["ports"])
    assert f"--providers.kubernetesIngress.ingressClass={ingress.INGRESS_CLASS}" in c["args"]
    assert f"--entryPoints.web.address=:{ingress.WEB_PORT}" in c["args"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ping"
    svc = docs["Service"]
    assert svc["spec"]["selector"] == ingress.POD_LABELS
    assert svc["spec"]["ports"][0]["targetPort"] == "web"


def test_the_ingress_class_is_traefiks_and_it_may_read_what_its_provider_watches() -> None:
    docs = _docs()
    assert docs["IngressClass"]["metadata"]["name"] == ingress.INGRESS_CLASS
    assert docs["IngressClass"]["spec"]["controller"] == "traefik.io/ingress-controller"
    granted = {(g, r, v) for rule in docs["ClusterRole"]["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    for group, resource in [("", "services"), ("", "secrets"), ("", "nodes"),
                            ("discovery.k8s.io", "endpointslices"),
                            ("networking.k8s.io", "ingresses"),
                            ("networking.k8s.io", "ingressclasses")]:  # fmt: skip
        assert {(group, resource, v) for v in ("get", "list", "watch")} <= granted, resource
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ingress.TRAEFIK,
                                    "namespace": ingress.INGRESS_NS}]  # fmt: skip


def test_the_cluster_values_expose_three_hosts_on_traefiks_class() -> None:
    values = yaml.safe_load(release.values_file().read_text())["ingress"]
    assert values["enabled"] is True and values["className"] == ingress.INGRESS_CLASS
    assert all(values["hosts"][c] for c in ("gateway", "api", "recommender"))
    assert ingress.UNKNOWN_HOST not in values["hosts"].values()


def test_the_cluster_values_admit_traefiks_pods() -> None:
    """ingress.controllerFrom selects the pods and namespace this module runs Traefik in."""
    (peer,) = yaml.safe_load(release.values_file().read_text())["ingress"]["controllerFrom"]
    ns_labels = {"kubernetes.io/metadata.name": ingress.INGRESS_NS}
    assert netpol.selects(peer["namespaceSelector"], ns_labels)
    assert netpol.selects(peer["podSelector"], ingress.POD_LABELS)
    assert not netpol.selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "x"})


def test_traefik_is_an_image_of_its_own() -> None:
    repo, path, user = images.SCRATCH_BINARIES["traefik"]
    assert path == "/traefik" and not user.startswith("0:")
    assert repo not in {r for b, (r, _, _) in images.SCRATCH_BINARIES.items() if b != "traefik"}
