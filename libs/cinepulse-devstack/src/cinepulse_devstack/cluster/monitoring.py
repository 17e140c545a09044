"""The real Prometheus operator on the node, reading the chart's monitors.

The operator (``github.com/prometheus-operator/prometheus-operator``, built from the Go
module proxy by scripts/k8s-tools.sh, run FROM scratch) in its own namespace with Pod
Security "restricted" enforced, and one ``Prometheus`` (upstream's, from the same module
proxy, FROM scratch: Debian's package of images/deps/prometheus is built without Kubernetes
service discovery and refuses the configuration the operator generates) selecting every
ServiceMonitor, PodMonitor and PrometheusRule of every namespace. The CRDs, and the RBAC rules the operator and
Prometheus need, come from the same module as the binaries, so they always match the
operator that reads them (``../shared/k8s-crds`` has another operator version's).

:func:`check` then asks Prometheus itself, through the API server's service proxy: every
scrape pool the chart's monitors produce has targets and all are up, and every rule group
of the chart's PrometheusRule is loaded with every rule healthy, and the release's
NetworkPolicies (accepted, not enforced, on this node) would admit Prometheus to each target.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from cinepulse_devstack import kube
from cinepulse_devstack.cluster import access, images, netpol
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.kube import NAMESPACE, StepFailed, bin_dir
from cinepulse_devstack.procs import require_tool

MODULE = "github.com/prometheus-operator/prometheus-operator"
MONITORING_NS = "monitoring"
#: the Prometheus resource; the operator names its StatefulSet prometheus-<name> and
#: governs it with the headless Service prometheus-operated (port 9090, "web")
PROMETHEUS = "cinepulse"
PROMETHEUS_SERVICE, PROMETHEUS_PORT = "prometheus-operated", 9090
#: the label the operator puts on the Prometheus pods it runs
PROMETHEUS_POD_SELECTOR = f"operator.prometheus.io/name={PROMETHEUS}"
#: the monitors scrape every 30s and the rules are evaluated every 30s: a few rounds
#: after the operator has regenerated the configuration and the reloader has reloaded it
CHECK_SECONDS = 240


def built_version(binary: str) -> str:
    """The version scripts/k8s-tools.sh built (its stamp), e.g. v0.85.0: for the operator,
    the module the CRDs come from; for Prometheus, the version the operator must generate
    its configuration and arguments for."""
    stamp = bin_dir() / f".{binary}.version"
    if not stamp.is_file():
        raise StepFailed(f"no {stamp}: bash scripts/k8s-tools.sh")
    return stamp.read_text().strip()


def operator_version() -> str:
    return built_version("prometheus-operator")


@functools.cache
def module_dir() -> Path:
    """The operator's module in the Go module cache (k8s-tools.sh downloaded it; ``go mod
    download`` answers from the cache without the network then)."""
    go = require_tool("go", "the Go toolchain (scripts/k8s-tools.sh needs it too)")
    with tempfile.TemporaryDirectory() as cwd:  # outside any module: no go.mod consulted
        r = subprocess.run([go, "mod", "download", "-json", f"{MODULE}@{operator_version()}"],
                           cwd=cwd, capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    if r.returncode:
        raise StepFailed(f"go mod download {MODULE}: {(r.stderr or r.stdout).strip()[-800:]}")
    return Path(json.loads(r.stdout)["Dir"])


def crd_files() -> list[Path]:
    """Every monitoring.coreos.com CRD from the operator's module, and the other CRDs the
    chart needs (the Spark operator's) from ``../shared/k8s-crds``."""
    ours = sorted((module_dir() / "example" / "prometheus-operator-crd").glob("*.yaml"))
    if not ours:
        raise StepFailed(f"no CRDs in {module_dir()}/example/prometheus-operator-crd")
    others = [f for f in sorted(kube.crds_dir().glob("*.yaml"))
              if not f.name.startswith("monitoring.coreos.com_")]  # fmt: skip
    return ours + others


def _cluster_role(example: str, name: str) -> dict[str, Any]:
    """A ClusterRole of the module's ``example/rbac`` (the rules this operator version
    needs), renamed into the cluster's ``cinepulse:`` prefix."""
    doc: dict[str, Any] = yaml.safe_load((module_dir() / "example" / "rbac" / example).read_text())
    doc["metadata"] = {"name": name}
    return doc


def _identity(name: str, role: dict[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccount ``name`` in the monitoring namespace, ``role`` and its binding."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": MONITORING_NS}},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role["metadata"]["name"]},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": role["metadata"]["name"]},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": MONITORING_NS}]},
    ]  # fmt: skip


def restricted_pod() -> dict[str, Any]:
    """Pod Security "restricted", as the image's user (nobody; no /etc/passwd needed).
    A new dict each time: a shared one would be dumped as a YAML alias."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container() -> dict[str, Any]:
    """A container's part of Pod Security "restricted": no privilege escalation, a read-only
    root, every capability dropped (a new dict each time, as :func:`restricted_pod`)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def manifests(operator_image: str, reloader_image: str, prometheus_image: str) -> str:
    labels = {"app.kubernetes.io/name": "prometheus-operator"}
    operator = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "prometheus-operator", "namespace": MONITORING_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": "prometheus-operator",
                    "securityContext": restricted_pod(),
                    "containers": [{
                        "name": "prometheus-operator",
                        "image": operator_image,
                        "imagePullPolicy": "Never",
                        "args": [
                            f"--prometheus-config-reloader={reloader_image}",
                            # a 10m CPU limit throttles the reloader on a busy 2-core node
                            # (slow first config); its memory limit stays
                            "--config-reloader-cpu-limit=0",
                        ],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                           "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": restricted_container(),
                    }],
                },
            },
        },
    }  # fmt: skip
    prometheus = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS, "namespace": MONITORING_NS},
        "spec": {
            "image": prometheus_image,
            "version": "v" + prometheus_image.rsplit(":", 1)[1],
            "imagePullPolicy": "Never",  # also the operator's containers in the pod
            "replicas": 1,
            "serviceAccountName": "prometheus",
            # empty selectors: every monitor and rule, in every namespace
            **{f"{kind}{part}": {}
               for kind in ("serviceMonitor", "podMonitor", "rule")
               for part in ("Selector", "NamespaceSelector")},
            # the chart already requests about 1 of the node's 2 CPUs
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                          "limits": {"memory": "1Gi"}},
            # the image's user (nobody) rather than the operator's default uid 1000
            "securityContext": {**restricted_pod(), "fsGroup": 65534},
            "storage": {"emptyDir": {"sizeLimit": "1Gi"}},
            "retention": "2h",
        },
    }  # fmt: skip
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MONITORING_NS, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}},
        *_identity("prometheus-operator", _cluster_role(
            "prometheus-operator/prometheus-operator-cluster-role.yaml",
            "cinepulse:prometheus-operator")),
        operator,
        *_identity("prometheus", _cluster_role(
            "prometheus/prometheus-cluster-role.yaml", "cinepulse:prometheus")),
        prometheus,
    ]  # fmt: skip
    return yaml.safe_dump_all(docs, sort_keys=False)


def install(node: KubeClient) -> str:
    """The operator and one Prometheus, applied; returns once Prometheus is Available."""
    operator, reloader, prometheus = (images.binary_image(b) for b in
                                      ("prometheus-operator", "prometheus-config-reloader", "prometheus"))  # fmt: skip
    # cluster.up imported them (images.own_images); again here for a node up before
    node.load_images([operator, reloader, prometheus], lambda s: None)
    node.kubectl("apply", "--server-side", "--field-manager=cinepulse-e2e", "-f", "-",
                 stdin=manifests(operator, reloader, prometheus))  # fmt: skip
    try:
        node.kubectl("-n", MONITORING_NS, "rollout", "status", "deployment/prometheus-operator",
                     "--timeout=180s", timeout=200)  # fmt: skip
        node.kubectl("-n", MONITORING_NS, "wait", "--for=condition=Available",
                     f"prometheus/{PROMETHEUS}", "--timeout=300s", timeout=320)  # fmt: skip
    except StepFailed as exc:
        raise StepFailed(f"{exc}\n{_seen(node)}") from None
    pods = node.get("pods", "-n", MONITORING_NS, "-l", PROMETHEUS_POD_SELECTOR)
    containers = [c["name"] for p in pods for c in p["spec"]["containers"]]
    return (f"operator {operator_version()} ({operator}) in {MONITORING_NS}; Prometheus "
            f"{built_version('prometheus')} Available: {', '.join(p['metadata']['name'] for p in pods)} "
            f"({', '.join(containers)})")  # fmt: skip


def _seen(node: KubeClient) -> str:
    """What the monitoring namespace looks like, for a failed install."""
    parts = [node.kubectl("get", "prometheus,statefulsets,pods", "-n", MONITORING_NS, "-o", "wide",
                          check=False).stdout]  # fmt: skip
    events = node.kubectl("get", "events", "-n", MONITORING_NS, "--sort-by=.lastTimestamp",
                          check=False).stdout.splitlines()  # fmt: skip
    parts.append("\n".join(events[-8:]))
    for what in ("deployment/prometheus-operator", f"statefulset/prometheus-{PROMETHEUS}"):
        r = node.kubectl("logs", "-n", MONITORING_NS, what, "--all-containers", "--tail=15",
                         check=False)  # fmt: skip
        parts.append(f"--- {what}: {(r.stdout or r.stderr).strip()}")
    return "\n".join(parts)[-3000:]


# ------------------------------------------------------------------------------ check


def expected_pools(monitors: list[dict[str, Any]]) -> set[str]:
    """The scrape pools (jobs of the generated configuration) the operator makes of
    ServiceMonitors and PodMonitors: one per endpoint, ``<kind>/<namespace>/<name>/<index>``."""
    pools: set[str] = set()
    for m in monitors:
        kind = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor"}[m["kind"]]
        endpoints = m["spec"].get("endpoints") or m["spec"].get("podMetricsEndpoints") or []
        meta = m["metadata"]
        pools.update(
            f"{kind}/{meta['namespace']}/{meta['name']}/{i}" for i in range(len(endpoints))
        )
    return pools


def _api(prometheus: str, path: str) -> Any:
    try:
        r = httpx.get(f"{prometheus}{path}", timeout=15)
    except httpx.HTTPError as exc:
        raise StepFailed(f"Prometheus {path}: {type(exc).__name__} {exc}") from None
    if r.status_code != 200:
        raise StepFailed(f"Prometheus {path}: HTTP {r.status_code} {r.text[:300]}")
    return r.json()["data"]


def targets_up(prometheus: str, pools: set[str]) -> list[dict[str, Any]]:
    """Every pool has active targets and each is up; the targets."""
    active = _api(prometheus, "/api/v1/targets?state=active")["activeTargets"]
    ours = [t for t in active if t["scrapePool"] in pools]
    rows = [f"{t['labels'].get('job')} {t['labels'].get('instance')} {t['health']}"
            + (f" ({t['lastError']})" if t.get("lastError") else "") for t in ours]  # fmt: skip
    missing = sorted(pools - {t["scrapePool"] for t in ours})
    down = [row for t, row in zip(ours, rows, strict=True) if t["health"] != "up"]
    if missing or down:
        raise StepFailed(f"scrape pools without targets: {missing}; not up: {down}; "
                         f"all targets: {rows}")  # fmt: skip
    return ours


def policies_admit(node: KubeClient, targets: list[dict[str, Any]]) -> int:
    """The release's NetworkPolicies would let this Prometheus pod in to each target's pod
    and port (not enforced on this node: :mod:`.netpol` evaluates them); their number."""
    policies = node.get("networkpolicies", "-n", NAMESPACE)
    pods = {p["metadata"]["name"]: p for p in node.get("pods", "-n", NAMESPACE)}
    ns = json.loads(node.kubectl("get", "namespace", MONITORING_NS, "-o", "json").stdout)
    prom = node.get("pods", "-n", MONITORING_NS, "-l", PROMETHEUS_POD_SELECTOR)
    if not prom or not prom[0]["status"].get("podIP"):
        raise StepFailed(f"no Prometheus pod with an address in {MONITORING_NS}")
    meta = prom[0]["metadata"]
    peer = netpol.Peer(MONITORING_NS, ns["metadata"].get("labels") or {},
                       meta.get("labels") or {}, prom[0]["status"]["podIP"])  # fmt: skip
    refused = []
    for t in targets:
        pod, port = pods.get(t["labels"].get("pod", "")), urlsplit(t["scrapeUrl"]).port
        if pod is None or port is None or not netpol.admits(policies, pod, port, peer):
            refused.append(t["scrapeUrl"])
    if refused:
        raise StepFailed(f"the release's NetworkPolicies (not enforced on this node) would "
                         f"refuse Prometheus from {MONITORING_NS}: {refused}")  # fmt: skip
    return len(policies)


def rules_ok(prometheus: str, rules: list[dict[str, Any]]) -> tuple[int, int]:
    """Every group of each PrometheusRule loaded from its file (the operator writes
    ``<namespace>-<name>-<uid>.yaml``) and every rule's health "ok" (evaluated)."""
    loaded = _api(prometheus, "/api/v1/rules")["groups"]
    bad, n_groups, n_rules = [], 0, 0
    for pr in rules:
        meta = pr["metadata"]
        stem = f"{meta['namespace']}-{meta['name']}-{meta['uid']}.yaml"
        have = {g["name"]: g for g in loaded if g["file"].endswith(stem)}
        for group in pr["spec"].get("groups", []):
            g = have.get(group["name"])
            if g is None:
                bad.append(f"group {group['name']} of {meta['name']} not loaded")
                continue
            n_groups += 1
            n_rules += len(g["rules"])
            if len(g["rules"]) != len(group["rules"]):
                bad.append(f"{group['name']}: {len(g['rules'])} of {len(group['rules'])} rules")
            bad += [f"{group['name']}/{r['name']}: {r.get('health')} {r.get('lastError', '')}"
                    for r in g["rules"] if r.get("health") != "ok"]  # fmt: skip
    if bad:
        raise StepFailed(f"rules: {'; '.join(bad)}")
    return n_groups, n_rules


def check(node: KubeClient) -> str:
    """Prometheus scrapes every target of the chart's monitors in the release's namespace
    and has loaded the chart's rules; retried for :data:`CHECK_SECONDS`."""
    monitors = node.get("servicemonitors,podmonitors", "-n", NAMESPACE)
    rules = node.get("prometheusrules", "-n", NAMESPACE)
    pools = expected_pools(monitors)
    if not pools or not rules:
        raise StepFailed(f"{len(pools)} scrape pools and {len(rules)} PrometheusRules "
                         f"in namespace {NAMESPACE}")  # fmt: skip
    with access.api_proxy(node) as proxy:
        prometheus = access.service_url(proxy, MONITORING_NS, PROMETHEUS_SERVICE, PROMETHEUS_PORT)

        def once() -> str:
            # a refused reload leaves the pod Ready on its previous configuration: say so
            # rather than only "no targets" (Debian's 2.42 refused kubernetes_sd_configs)
            if not _api(prometheus, "/api/v1/status/runtimeinfo").get("reloadConfigSuccess"):
                log = node.kubectl("logs", "-n", MONITORING_NS, f"prometheus-{PROMETHEUS}-0",
                                   "-c", "prometheus", "--tail=3", check=False).stdout  # fmt: skip
                raise StepFailed(f"Prometheus refused its configuration: {log[-800:]}")
            targets = targets_up(prometheus, pools)
            groups, n = rules_ok(prometheus, rules)
            policies = policies_admit(node, targets)
            rows = [f"{t['labels'].get('job')} {t['labels'].get('instance')}" for t in targets]
            return (f"{groups} rule groups loaded, {n} rules ok; {len(targets)} targets up in "
                    f"{len(pools)} scrape pools, admitted by the {policies} NetworkPolicies: "
                    f"{'; '.join(rows)}")  # fmt: skip

        return kube._eventually(once, seconds=CHECK_SECONDS, every=10)
