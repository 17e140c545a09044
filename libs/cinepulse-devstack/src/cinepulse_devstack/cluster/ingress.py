"""A real ingress controller on the node: Traefik v3 in front of the chart's Ingresses.

:func:`install` runs upstream's Traefik (built from the Go module proxy by
scripts/k8s-tools.sh, run FROM scratch) in its own namespace with Pod Security "restricted"
enforced: its ServiceAccount and the cluster-wide read access its ``kubernetesIngress``
provider needs, the ``IngressClass`` :data:`INGRESS_CLASS` (``ci/cluster-values.yaml``:
``ingress.className``), one Deployment listening on unprivileged ports (:data:`WEB_PORT` for
the routed traffic, :data:`ADMIN_PORT` for ``/ping``) and a ClusterIP Service, which the
e2e reaches through ``kubectl port-forward`` (nothing on this machine routes to a Service).

:func:`check` then sends requests through it with each Ingress's ``Host``: the api's public
aggregates, the recommender (and the api's path on the recommender's host: the
recommender's own 404, so each host reaches its own service), events POSTed to the gateway
(archived and modelled, like the in-cluster roundtrip's), and an unknown host, which
Traefik itself answers 404. The release's NetworkPolicies (accepted, not enforced, on this
node) must admit the Traefik pod to each backend (:mod:`.netpol`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import yaml

from cinepulse_devstack import kube
from cinepulse_devstack.cluster import access, images, netpol
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.cluster.monitoring import (
    built_version,
    restricted_container,
    restricted_pod,
)
from cinepulse_devstack.cluster.traffic import Stores, Traffic, fresh_events, post_events
from cinepulse_devstack.kube import NAMESPACE, StepFailed

INGRESS_NS = "ingress"
TRAEFIK = "traefik"
#: the IngressClass the chart's Ingresses name (ingress.className) and Traefik's controller
INGRESS_CLASS, CONTROLLER = "traefik", "traefik.io/ingress-controller"
#: the pods' labels: ci/cluster-values.yaml's ingress.controllerFrom selects them
POD_LABELS = {
    "app.kubernetes.io/name": TRAEFIK,
    "app.kubernetes.io/component": "ingress-controller",
}
#: the entry point of the routed traffic, and Traefik's own (``/ping``); the Service's port
WEB_PORT, ADMIN_PORT, SERVICE_PORT = 8000, 8080, 80
FIELD_MANAGER = "cinepulse-e2e-ingress"
#: a host no Ingress names: Traefik's own 404
UNKNOWN_HOST = "unknown.cinepulse.localhost"
#: events POSTed to the gateway through the ingress
EVENTS = 50


def cluster_role() -> dict[str, Any]:
    """What the ``kubernetesIngress`` provider reads (its informers: Ingresses, Services,
    EndpointSlices and Secrets of the watched namespaces, IngressClasses and Nodes cluster
    wide) and the Ingress status it may write."""
    read = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"cinepulse:{TRAEFIK}"},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
             "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
             "verbs": ["update"]},
        ],
    }  # fmt: skip


def manifests(image: str) -> str:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": TRAEFIK, "namespace": INGRESS_NS, "labels": dict(POD_LABELS)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(POD_LABELS)},
            "template": {
                "metadata": {"labels": dict(POD_LABELS)},
                "spec": {
                    "serviceAccountName": TRAEFIK,
                    "securityContext": {**restricted_pod(), "runAsUser": 65532,
                                        "runAsGroup": 65532},
                    "containers": [{
                        "name": TRAEFIK,
                        "image": image,
                        "imagePullPolicy": "Never",
                        "args": [
                            f"--entryPoints.web.address=:{WEB_PORT}",
                            f"--entryPoints.traefik.address=:{ADMIN_PORT}",
                            "--ping=true",
                            "--providers.kubernetesIngress=true",
                            f"--providers.kubernetesIngress.ingressClass={INGRESS_CLASS}",
                            # no internet here, and nothing to report to
                            "--global.checkNewVersion=false",
                            "--global.sendAnonymousUsage=false",
                            # the backends never see a header aliasing one Traefik sets
                            "--entryPoints.web.http.aliasHeadersStrategy=delete",
                            "--log.level=INFO",
                            "--log.noColor=true",
                            "--accessLog=true",
                        ],
                        "ports": [{"name": "web", "containerPort": WEB_PORT},
                                  {"name": "admin", "containerPort": ADMIN_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/ping", "port": "admin"},
                                           "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/ping", "port": "admin"},
                                          "periodSeconds": 20},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": restricted_container(),
                    }],
                },
            },
        },
    }  # fmt: skip
    role = cluster_role()
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INGRESS_NS, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": TRAEFIK, "namespace": INGRESS_NS}},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role["metadata"]["name"]},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": role["metadata"]["name"]},
         "subjects": [{"kind": "ServiceAccount", "name": TRAEFIK, "namespace": INGRESS_NS}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": INGRESS_CLASS}, "spec": {"controller": CONTROLLER}},
        deployment,
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": TRAEFIK, "namespace": INGRESS_NS, "labels": dict(POD_LABELS)},
         "spec": {"selector": dict(POD_LABELS),
                  "ports": [{"name": "web", "port": SERVICE_PORT, "targetPort": "web"}]}},
    ]  # fmt: skip
    return yaml.safe_dump_all(docs, sort_keys=False)


def install(node: KubeClient) -> str:
    """Traefik, applied, its Deployment rolled out; the IngressClass there."""
    image = images.binary_image(TRAEFIK)
    node.load_images([image], lambda s: None)  # imported at cluster up; a node up before
    node.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
                 stdin=manifests(image))  # fmt: skip
    try:
        node.kubectl("-n", INGRESS_NS, "rollout", "status", f"deployment/{TRAEFIK}",
                     "--timeout=180s", timeout=200)  # fmt: skip
    except StepFailed as exc:
        seen = node.kubectl("get", "deployments,pods,events", "-n", INGRESS_NS,
                            check=False).stdout  # fmt: skip
        log = node.kubectl("logs", "-n", INGRESS_NS, f"deployment/{TRAEFIK}", "--tail=15",
                           check=False)  # fmt: skip
        raise StepFailed(f"{exc}\n{seen}\n{(log.stdout or log.stderr)[-1500:]}") from None
    pods = _pods(node)
    return (f"Traefik {built_version(TRAEFIK)} ({image}) in {INGRESS_NS}: "
            f"{', '.join(p['metadata']['name'] for p in pods)}; IngressClass {INGRESS_CLASS} "
            f"({CONTROLLER}); entry point web :{WEB_PORT}, /ping on :{ADMIN_PORT}")  # fmt: skip


def _pods(node: KubeClient) -> list[dict[str, Any]]:
    """Traefik's pods, but those going away (a re-apply rolls the Deployment)."""
    pods = node.get("pods", "-n", INGRESS_NS, "-l", f"app.kubernetes.io/name={TRAEFIK}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


# ------------------------------------------------------------------------------ check


def hosts(node: KubeClient) -> dict[str, str]:
    """The release's Ingresses of class :data:`INGRESS_CLASS`: component -> host."""
    found = {}
    for ing in node.get("ingresses", "-n", NAMESPACE):
        if ing["spec"].get("ingressClassName") != INGRESS_CLASS:
            continue
        component = ing["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
        found[component] = ing["spec"]["rules"][0]["host"]
    missing = {"gateway", "api", "recommender"} - set(found)
    if missing:
        raise StepFailed(f"no Ingress of class {INGRESS_CLASS} for {sorted(missing)} in "
                         f"{NAMESPACE} (ci/cluster-values.yaml: ingress.*): {found}")  # fmt: skip
    return found


def policies_admit(node: KubeClient) -> str:
    """The release's NetworkPolicies (not enforced on this node: :mod:`.netpol`) admit the
    Traefik pod to every pod behind an Ingress, on the backend's port; how many there are,
    and whether they would also admit any pod (``networkPolicies.ingressFrom`` empty, as in
    ci/cluster-values.yaml), which makes the admission of Traefik's say little."""
    policies = node.get("networkpolicies", "-n", NAMESPACE)
    ns = json.loads(node.kubectl("get", "namespace", INGRESS_NS, "-o", "json").stdout)
    traefik = _pods(node)
    if not traefik or not traefik[0]["status"].get("podIP"):
        raise StepFailed(f"no Traefik pod with an address in {INGRESS_NS}")
    meta = traefik[0]["metadata"]
    peer = netpol.Peer(INGRESS_NS, ns["metadata"].get("labels") or {},
                       meta.get("labels") or {}, traefik[0]["status"]["podIP"])  # fmt: skip
    stranger = netpol.Peer(
        "default", {"kubernetes.io/metadata.name": "default"}, {}, "10.244.0.254"
    )
    refused, strangers = [], 0
    for ing in node.get("ingresses", "-n", NAMESPACE):
        for rule in ing["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                svc_name = path["backend"]["service"]["name"]
                svc = json.loads(node.kubectl("get", "service", "-n", NAMESPACE, svc_name,
                                              "-o", "json").stdout)  # fmt: skip
                want = path["backend"]["service"]["port"]
                port = next(p for p in svc["spec"]["ports"]
                            if p.get("name") == want.get("name") or p["port"] == want.get("number"))  # fmt: skip
                selector = ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items())
                for pod in node.get("pods", "-n", NAMESPACE, "-l", selector):
                    if pod["status"].get("phase") != "Running":
                        continue
                    target = port["targetPort"]
                    if isinstance(target, str):
                        target = next(p["containerPort"] for c in pod["spec"]["containers"]
                                      for p in c.get("ports") or [] if p.get("name") == target)  # fmt: skip
                    if not netpol.admits(policies, pod, int(target), peer):
                        refused.append(f"{pod['metadata']['name']}:{target}")
                    strangers += netpol.admits(policies, pod, int(target), stranger)
    if refused:
        raise StepFailed(f"the release's NetworkPolicies (not enforced on this node) would "
                         f"refuse Traefik from {INGRESS_NS}: {refused}")  # fmt: skip
    return (f"the {len(policies)} NetworkPolicies admit Traefik from {INGRESS_NS} to every "
            f"backend" + (" (and any pod: networkPolicies.ingressFrom is empty)"
                          if strangers else " (not a pod of another namespace)"))  # fmt: skip


def _get(http: httpx.Client, host: str, path: str, **kw: Any) -> httpx.Response:
    return http.get(path, headers={"Host": host, **kw.pop("headers", {})}, **kw)


def check(node: KubeClient, db: Stores, write_key: str) -> tuple[str, Traffic]:
    """Requests through Traefik by host; events through it archived and modelled."""
    by = hosts(node)
    with (
        access.port_forward(node, INGRESS_NS, f"svc/{TRAEFIK}", SERVICE_PORT) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        base = f"http://127.0.0.1:{port}"
        seen: list[str] = []

        def routed() -> str:
            # Traefik loads the Ingresses (and the backends' endpoints) from its watches:
            # a few seconds after they appear
            r = _get(http, by["api"], "/api/top_movies")
            if r.status_code != 200:
                raise StepFailed(f"GET {by['api']}/api/top_movies through Traefik: "
                                 f"{r.status_code} {r.text[:200]}")  # fmt: skip
            return f"{by['api']} /api/top_movies 200 ({len(r.json().get('items') or [])} movies)"

        seen.append(kube._eventually(routed, seconds=60, every=2))
        # the same path on the recommender's host: the recommender's own 404 (JSON), not
        # the api's answer: the host picks the service
        r = _get(http, by["recommender"], "/api/top_movies")
        if r.status_code != 404 or "detail" not in r.text:
            raise StepFailed(f"GET {by['recommender']}/api/top_movies: {r.status_code} "
                             f"{r.text[:200]} (expected the recommender's 404)")  # fmt: skip
        seen.append(f"{by['recommender']} /api/top_movies 404 from the recommender")
        r = _get(http, by["recommender"], "/healthz")
        if r.status_code != 200:
            raise StepFailed(f"GET {by['recommender']}/healthz: {r.status_code} {r.text[:200]}")
        seen.append(f"{by['recommender']} /healthz 200")
        movie = _first_movie(http, by["api"])
        if movie is not None:
            # before the first training the popularity model may not know it: the
            # recommender's own 404 then (JSON), still its answer through the ingress
            r = _get(http, by["recommender"], f"/api/movies/{movie}/similar", params={"k": 5})
            if r.status_code == 200:
                similar = r.json()
                seen.append(f"{by['recommender']} /api/movies/{movie}/similar 200 "
                            f"({len(similar.get('items', []))} movies, {similar.get('strategy')})")  # fmt: skip
            elif r.status_code == 404 and "unknown movie" in r.text:
                seen.append(f"{by['recommender']} /api/movies/{movie}/similar 404 from the "
                            f"recommender ({r.json().get('detail')})")  # fmt: skip
            else:
                raise StepFailed(f"GET {by['recommender']}/api/movies/{movie}/similar: "
                                 f"{r.status_code} {r.text[:200]}")  # fmt: skip
        r = _get(http, UNKNOWN_HOST, "/api/top_movies")
        if r.status_code != 404 or r.text.strip() != "404 page not found":
            raise StepFailed(f"GET {UNKNOWN_HOST}/api/top_movies: {r.status_code} "
                             f"{r.text[:200]} (expected Traefik's own 404)")  # fmt: skip
        seen.append(f"{UNKNOWN_HOST} 404 (Traefik's: no router)")
        t = Traffic("posted through the Traefik ingress")
        post_events(base, write_key, fresh_events(EVENTS, seed=int(time.time()) + 7), t,
                    host=by["gateway"])  # fmt: skip
    db.tally(t, timeout_s=300)
    if t.lost:
        raise StepFailed(f"through Traefik: {t.lost} acknowledged events not archived and "
                         f"modelled ({t.archived} archived, {t.modelled} modelled of "
                         f"{t.acknowledged}); {'; '.join(seen)}")  # fmt: skip
    seen.append(f"{by['gateway']} POST /api/events/batch: {t.acknowledged}/{t.sent} "
                f"acknowledged (202), all archived and modelled")  # fmt: skip
    seen.append(policies_admit(node))
    return "; ".join(seen), t


def _first_movie(http: httpx.Client, api_host: str) -> int | None:
    """The first movie of the api's public aggregates (none before any event is modelled)."""
    items = _get(http, api_host, "/api/top_movies").json().get("items") or []
    return int(items[0]["movie_id"]) if items else None
