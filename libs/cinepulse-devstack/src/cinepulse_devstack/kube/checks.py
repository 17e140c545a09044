"""The checks on a cluster after an install or an upgrade, each a step of the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from cinepulse_devstack import chart
from cinepulse_devstack.kube.binaries import crds_dir
from cinepulse_devstack.kube.constants import NAMESPACE, RELEASE
from cinepulse_devstack.kube.kwok import ClusterClient, StepFailed


def _eventually(check: Callable[[], str], seconds: float = 120, every: float = 2) -> str:
    """``check()`` once it passes (a controller may still be acting: the HPAs scale the
    gateway and the recommender up to their minimum after the install)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except StepFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def _deployments_available(c: ClusterClient) -> str:
    deps = c.get("deployments", "-n", NAMESPACE)
    if not deps:
        raise StepFailed("no Deployment in the namespace")
    bad = []
    for d in deps:
        want = d["spec"].get("replicas", 1)
        st = d.get("status", {})
        if st.get("availableReplicas", 0) != want or st.get("updatedReplicas", 0) != want:
            bad.append(f"{d['metadata']['name']} {st.get('availableReplicas', 0)}/{want}")
    if bad:
        raise StepFailed("Deployments not available: " + ", ".join(bad))
    return ", ".join(
        f"{d['metadata']['name']} {d['status']['availableReplicas']}/{d['spec']['replicas']}"
        for d in deps
    )


def _statefulsets_ready(c: ClusterClient) -> str:
    sts = c.get("statefulsets", "-n", NAMESPACE)
    bad = [
        s["metadata"]["name"]
        for s in sts
        if s.get("status", {}).get("readyReplicas", 0) != s["spec"]["replicas"]
    ]
    if bad:
        raise StepFailed("StatefulSets not ready: " + ", ".join(bad))
    pvcs = c.get("pvc", "-n", NAMESPACE)
    unbound = [p["metadata"]["name"] for p in pvcs if p["status"].get("phase") != "Bound"]
    if unbound:
        raise StepFailed("claims not bound: " + ", ".join(unbound))
    return f"{len(sts)} StatefulSets ready, {len(pvcs)} claims bound"


def _expected_kinds(manifests: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in chart.documents(manifests):
        if "helm.sh/hook" in (d["metadata"].get("annotations") or {}):
            continue
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    return counts


#: kinds whose presence on the server is asserted (count = the rendered chart's)
ASSERTED_KINDS = {
    "SparkApplication": "sparkapplications.sparkoperator.k8s.io",
    "ScheduledSparkApplication": "scheduledsparkapplications.sparkoperator.k8s.io",
    "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
    "PodMonitor": "podmonitors.monitoring.coreos.com",
    "PrometheusRule": "prometheusrules.monitoring.coreos.com",
    "NetworkPolicy": "networkpolicies.networking.k8s.io",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers.autoscaling",
    "PodDisruptionBudget": "poddisruptionbudgets.policy",
    "ConfigMap": "configmaps",
}


def _objects_accepted(c: ClusterClient, manifests: str) -> str:
    expected = _expected_kinds(manifests)
    got: list[str] = []
    missing: list[str] = []
    for kind, resource in ASSERTED_KINDS.items():
        want = expected.get(kind, 0)
        if not want:
            continue
        items = c.get(resource, "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")
        (got if len(items) == want else missing).append(f"{kind} {len(items)}/{want}")
    if missing:
        raise StepFailed("on the server: " + ", ".join(got + missing))
    return ", ".join(got)


def apply_crds(c: ClusterClient, files: Sequence[Path] | None = None) -> str:
    """The CRDs the chart's custom resources need: ``files``, by default those of
    ``../shared/k8s-crds`` (the real node applies the Prometheus operator's own instead of
    that folder's monitoring CRDs: :func:`cinepulse_devstack.cluster.monitoring.crd_files`)."""
    files = sorted(crds_dir().glob("*.yaml")) if files is None else list(files)
    if not files:
        raise StepFailed(f"no CRDs in {crds_dir()}")
    c.kubectl(
        "apply",
        "--server-side",
        "--field-manager=cinepulse-e2e",
        *(a for f in files for a in ("-f", str(f))),
    )
    c.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
    return f"{len(files)} CRDs established (server-side apply)"


def _pod_security_enforced(c: ClusterClient) -> str:
    """The control for the install: the API server refuses a privileged pod in the release's
    namespace, so the chart's pods were admitted under Pod Security "restricted"."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-probe"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    try:
        c.kubectl(
            "apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(pod)
        )
    except StepFailed as exc:
        if "violates PodSecurity" in str(exc):
            return 'a privileged pod is refused (violates PodSecurity "restricted:latest")'
        raise
    raise StepFailed("a privileged pod was admitted: Pod Security is not enforced")
