"""The Helm chart on a real control plane: kube-apiserver, kube-controller-manager,
kube-scheduler and etcd (built from the Go module proxy by ``scripts/k8s-tools.sh`` into
``~/.cache/cinepulse/bin/k8s``), started by kwokctl's ``binary`` runtime with fake nodes
(kwok), on which pods report Running and Ready and Job pods complete.

The end-to-end run (:func:`e2e`, ``make chart-e2e``) proves what the static checks
(:mod:`cinepulse_devstack.chart`) cannot: the API server accepts every object (admission,
validation, CRD schemas, Pod Security "restricted" enforced on the namespace), the
controllers turn them into pods that the scheduler places, ``lookup`` in the templates works
against a live server, the migration hook Job completes, ``helm install --wait`` and
``helm upgrade --wait`` succeed and every Deployment reports available. It also exports the
server's OpenAPI (``/openapi/v2``) and validates the rendered chart with kubeconform against
schemas derived from it.

Nothing is downloaded: kwokctl gets the path of every binary, and its HTTP(S) proxy points at
a closed local port, so an attempted download fails at once instead of reaching out.

``python -m cinepulse_devstack.kube`` runs it and prints one line per step with its duration;
``--keep`` leaves the cluster running with the release installed (``KUBECONFIG`` printed)
for a look around; the next run deletes it first.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from cinepulse_common.paths import datasets_root, default_cache, repo_root
from cinepulse_devstack import chart
from cinepulse_devstack.procs import StackError

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


def bin_dir() -> Path:
    return default_cache() / "bin" / "k8s"


def binary(name: str) -> str:
    return str(bin_dir() / name)


def missing_binaries() -> list[str]:
    """The control-plane binaries not built yet (``bash scripts/k8s-tools.sh`` builds them)."""
    d = bin_dir()
    return [
        n
        for n in BINARIES
        if not (d / n).is_file()
        or not os.access(d / n, os.X_OK)
        or not (d / f".{n}.version").is_file()
    ]


def kube_version() -> str:
    """The built Kubernetes version (the stamp scripts/k8s-tools.sh wrote), e.g. v1.34.4."""
    return (bin_dir() / ".kube-apiserver.version").read_text().strip()


def crds_dir() -> Path:
    return datasets_root().parent / "k8s-crds"


# ------------------------------------------------------------------------------ the cluster


class StepFailed(StackError):
    """A step of an end-to-end run failed; the message says what was seen."""


def _run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        list(args),
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if r.returncode:
        raise StepFailed(
            f"{' '.join(args[:4])} ... exited {r.returncode}: {(r.stderr or r.stdout).strip()[-3000:]}"
        )
    return r


class ClusterClient(Protocol):
    """What the checks below need of a cluster: the kwok one here, or the real node of
    :mod:`cinepulse_devstack.cluster`."""

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]: ...

    def get(self, *args: str) -> list[dict[str, Any]]: ...


@dataclass
class KwokCluster:
    """A kwokctl cluster (binary runtime) whose state lives in ``workdir``."""

    workdir: Path
    name: str = CLUSTER

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KWOK_WORKDIR": str(self.workdir / "kwok"),
                "KWOK_RUNTIME": "binary",
                "KWOK_KUBE_VERSION": kube_version(),
                # every binary kwokctl may want resolves to a local file, never a URL
                "KWOK_KUBE_BINARY_PREFIX": str(bin_dir()),
                "KWOK_KUBECTL_BINARY": binary("kubectl"),
                "KWOK_KUBE_APISERVER_BINARY": binary("kube-apiserver"),
                "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": binary("kube-controller-manager"),
                "KWOK_KUBE_SCHEDULER_BINARY": binary("kube-scheduler"),
                "KWOK_CONTROLLER_BINARY": binary("kwok"),
                "KWOK_ETCD_BINARY": binary("etcd"),
                # a download that slips through fails at once (nothing listens on port 9)
                "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "127.0.0.1,localhost",
                "KUBECONFIG": str(self.kubeconfig),
            }
        )
        return env

    def kwokctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(
            [binary("kwokctl"), "--name", self.name, *args], env=self.env(), timeout=timeout
        )

    def create(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.delete()  # a cluster left by an interrupted run
        out = self.kwokctl(
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--kube-apiserver-port",
            str(APISERVER_PORT),
            "--etcd-port",
            str(ETCD_PORT),
            "--kube-apiserver-binary",
            binary("kube-apiserver"),
            "--kube-controller-manager-binary",
            binary("kube-controller-manager"),
            "--kube-scheduler-binary",
            binary("kube-scheduler"),
            "--kwok-controller-binary",
            binary("kwok"),
            "--etcd-binary",
            binary("etcd"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--quiet-pull",
            "--wait",
            "3m",
            timeout=360,
        )
        log = out.stdout + out.stderr
        if "Download" in log:  # kwokctl logs every fetch it starts
            raise StepFailed(f"kwokctl tried to download something: {log[-2000:]}")
        v = json.loads(self.kubectl("version", "-o", "json").stdout)
        return f"server {v['serverVersion']['gitVersion']}, https://127.0.0.1:{APISERVER_PORT}"

    def delete(self) -> None:
        if (self.workdir / "kwok" / "clusters" / self.name).exists():
            subprocess.run(
                [
                    binary("kwokctl"),
                    "--name",
                    self.name,
                    "delete",
                    "cluster",
                    "--kubeconfig",
                    str(self.kubeconfig),
                ],
                env=self.env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=180,
            )

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return _run([binary("kubectl"), *args], env=self.env(), stdin=stdin, timeout=timeout)

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return _run([chart.tool("helm"), *args], env=self.env(), timeout=timeout)

    def get(self, *args: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)[
            "items"
        ]
        return items


# ------------------------------------------------------------------------------ fixtures


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


# ------------------------------------------------------------------------------ checks


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


# ------------------------------------------------------------------------------ OpenAPI


def _inline_v2(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    """``node`` with ``#/definitions/`` references inlined (recursion cut like chart._inline);
    int-or-string and quantities accept both YAML forms, as the API server does."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.removeprefix("#/definitions/")
            if name in seen:
                return {}
            out = _inline_v2(defs[name], defs, seen | {name})
            return {**out, **{k: v for k, v in node.items() if k != "$ref"}}
        out = {k: _inline_v2(v, defs, seen) for k, v in node.items()}
        if out.get("format") == "int-or-string" or out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        return out
    if isinstance(node, list):
        return [_inline_v2(v, defs, seen) for v in node]
    return node


def openapi_schemas(swagger: dict[str, Any], out: Path) -> int:
    """kubeconform schemas (``<kind>-<group>-<version>.json``, strict) for every kind the
    server's OpenAPI v2 document defines; returns how many were written."""
    defs = dict(swagger["definitions"])
    quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity"
    if quantity in defs:
        defs[quantity] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if gvk["kind"].endswith("List") or name.startswith("io.k8s.apimachinery"):
                continue
            s = _inline_v2(schema, defs, frozenset({name}))
            chart._strict(s)
            group = gvk["group"].split(".")[0]
            suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
            (out / f"{gvk['kind'].lower()}{suffix}.json").write_text(json.dumps(s))
            n += 1
    return n


def _kubeconform_openapi(c: KwokCluster, manifests: str) -> str:
    raw = c.kubectl("get", "--raw", "/openapi/v2", timeout=120).stdout
    out = default_cache() / "k8s-openapi" / kube_version()
    (out.parent).mkdir(parents=True, exist_ok=True)
    (out.parent / f"{kube_version()}-openapi-v2.json").write_text(raw)
    n = openapi_schemas(json.loads(raw), out)
    crd = chart.crd_schemas(crds_dir())
    derived = ["-schema-location", str(out) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json"]
    r = subprocess.run(
        [
            chart.tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "text",
            *derived,
            "-schema-location",
            str(crd) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode:
        raise StepFailed(f"kubeconform against the server's OpenAPI: {r.stdout.strip()[-3000:]}")
    # the control: an unknown field fails against the same schemas
    typo = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "typo"},
        "spec": {"replicaz": 1, "selector": {}, "template": {}},
    }
    bad = subprocess.run(
        [chart.tool("kubeconform"), "-strict", *derived, "-"],
        input=yaml.safe_dump(typo),
        capture_output=True,
        text=True,
        check=False,
    )
    if bad.returncode == 0 or "replicaz" not in bad.stdout:
        raise StepFailed(f"the derived schemas accept an unknown field: {bad.stdout.strip()}")
    return f"{n} kind schemas from /openapi/v2; {summary}; an unknown field is refused"


# ------------------------------------------------------------------------------ the run


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def table(self) -> str:
        width = max((len(s.name) for s in self.steps), default=0)
        lines = [
            f"{s.name:<{width}}  {s.seconds:7.1f}s  {'ok  ' if s.ok else 'FAIL'} {s.detail}"
            for s in self.steps
        ]
        lines.append(f"{'total':<{width}}  {sum(s.seconds for s in self.steps):7.1f}s")
        return "\n".join(lines)


def _values_files() -> list[Path]:
    return [chart.chart_dir() / "ci" / "default-values.yaml"]


def e2e(
    workdir: Path | None = None,
    *,
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Cluster up, CRDs, namespace and Secrets, ``helm install --wait``, the checks,
    ``helm upgrade --wait`` (api 2 → 3 replicas), the checks again, kubeconform against the
    server's OpenAPI, ``helm uninstall``, cluster down. Stops at the first failed step."""
    report = Report()
    say = progress or (lambda s: None)
    with _workdir(workdir) as wd:
        c = KwokCluster(wd)
        chart_path = str(chart.chart_dir())
        values = [a for f in _values_files() for a in ("-f", str(f))]
        rendered: dict[str, str] = {}
        passwords: dict[str, str] = {}

        def generated_passwords() -> dict[str, str]:
            return {
                s["metadata"]["name"]: s["data"]["password"]
                for s in c.get(
                    "secrets", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}"
                )
                if "password" in (s.get("data") or {})
            }

        def step(name: str, fn: Callable[[], str]) -> None:
            say(f"==> [chart-e2e {time.strftime('%H:%M:%S')}] {name}")
            t0 = time.monotonic()
            try:
                detail = fn()
                report.steps.append(Step(name, True, detail, time.monotonic() - t0))
            except (StepFailed, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                report.steps.append(Step(name, False, str(exc), time.monotonic() - t0))
                raise

        def nodes() -> str:
            c.kubectl("apply", "-f", "-", stdin=nodes_manifest())
            c.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
            return f"{NODES} nodes Ready, each {NODE_ALLOCATABLE}"

        def namespace() -> str:
            c.kubectl("apply", "-f", "-", stdin=namespace_manifest())
            return f"namespace {NAMESPACE} (Pod Security restricted), Secret {WRITE_KEYS}, {VOLUMES} PVs"

        def install() -> str:
            err = c.helm(
                "install", RELEASE, chart_path, "-n", NAMESPACE, *values,
                "--wait", "--wait-for-jobs", "--timeout", INSTALL_TIMEOUT,
            ).stderr  # fmt: skip
            rendered["install"] = c.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
            hooks = c.helm("get", "hooks", RELEASE, "-n", NAMESPACE).stdout
            # the migrations: a hook, or a plain Job of the release at install (with the
            # bundled database); --wait-for-jobs waited for either
            jobs = [
                d["metadata"]["name"]
                for d in chart.documents(hooks + "\n---\n" + rendered["install"])
                if d["kind"] == "Job"
            ]
            passwords.update(generated_passwords())
            n = len(chart.documents(rendered["install"]))
            return f"{n} objects; Jobs {', '.join(jobs)} completed" + _warnings(err)

        def upgrade() -> str:
            err = c.helm(
                "upgrade", RELEASE, chart_path, "-n", NAMESPACE, *values, "--set", "api.replicas=3",
                "--wait", "--wait-for-jobs", "--timeout", INSTALL_TIMEOUT,
            ).stderr  # fmt: skip
            rendered["upgrade"] = c.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout
            api = [
                d
                for d in c.get("deployments", "-n", NAMESPACE)
                if d["metadata"]["name"].endswith("-api")
            ]
            if not api or api[0]["status"].get("availableReplicas") != 3:
                raise StepFailed(
                    f"api not at 3 available replicas after the upgrade: {api and api[0]['status']}"
                )
            rev = json.loads(c.helm("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)[
                "version"
            ]
            # the chart's `lookup` keeps the generated passwords (helm template cannot test it)
            changed = [n for n, pw in generated_passwords().items() if passwords.get(n) != pw]
            if not passwords or changed:
                raise StepFailed(
                    f"generated passwords not kept by the upgrade: {changed or 'none'}"
                )
            kept = f"{len(passwords)} generated passwords kept"
            return f"revision {rev}, api 3/3 available, {kept}" + _warnings(err)

        def uninstall() -> str:
            c.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", INSTALL_TIMEOUT)
            left = [
                d["metadata"]["name"] for d in c.get("deployments,statefulsets", "-n", NAMESPACE)
            ]
            if left:
                raise StepFailed(f"left after uninstall: {left}")
            kept = [
                s["metadata"]["name"]
                for s in c.get("secrets", "-n", NAMESPACE)
                if s["metadata"]["name"] != WRITE_KEYS
            ]
            return "no workload left" + (
                f"; kept by resource-policy: {', '.join(kept)}" if kept else ""
            )

        try:
            step("cluster up (kwokctl, binary runtime)", c.create)
            step("fake nodes", nodes)
            step("CRDs", lambda: apply_crds(c))
            step("namespace, Secret, volumes", namespace)
            step("Pod Security enforced (control)", lambda: _pod_security_enforced(c))
            step("helm install --wait", install)
            step("Deployments available", lambda: _eventually(lambda: _deployments_available(c)))
            step(
                "StatefulSets ready, claims bound",
                lambda: _eventually(lambda: _statefulsets_ready(c)),
            )
            step(
                "CRs, NetworkPolicies, HPAs, PDBs accepted",
                lambda: _objects_accepted(c, rendered["install"]),
            )
            step("helm upgrade --wait (api.replicas=3)", upgrade)
            step(
                "Deployments available after upgrade",
                lambda: _eventually(lambda: _deployments_available(c)),
            )
            step(
                "kubeconform vs the server's OpenAPI",
                lambda: _kubeconform_openapi(c, rendered["upgrade"]),
            )
            if not keep:
                step("helm uninstall", uninstall)
        except (StepFailed, subprocess.TimeoutExpired, KeyError, ValueError):
            _dump_state(c, wd, say)
        finally:
            if keep:
                say(f"cluster kept: export KUBECONFIG={c.kubeconfig}")
            else:
                t0 = time.monotonic()
                c.delete()
                report.steps.append(Step("cluster down", True, "", time.monotonic() - t0))
    return report


def _warnings(stderr: str) -> str:
    """The API server's warnings helm printed (deprecations, Pod Security), for the report."""
    found = [line.strip() for line in stderr.splitlines() if "warning" in line.lower()]
    return f"; {len(found)} warnings: {' | '.join(found[:5])}" if found else "; no warnings"


def _dump_state(c: ClusterClient, wd: Path, say: Callable[[str], None]) -> None:
    """What the cluster looked like at the failure, into ``<workdir>/state.txt``."""
    try:
        out = c.kubectl("get", "all,pvc,events", "-n", NAMESPACE, "-o", "wide").stdout
        (wd / "state.txt").write_text(out)
        say(f"cluster state at the failure: {wd / 'state.txt'}")
    except (StepFailed, subprocess.TimeoutExpired):
        pass


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    d = repo_root() / ".stack" / "chart-e2e"
    d.mkdir(parents=True, exist_ok=True)  # a cluster left there is deleted by create()
    (d / "state.txt").unlink(missing_ok=True)
    yield d


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    missing = missing_binaries()
    if missing:
        print(f"not built: {', '.join(missing)} (run: bash scripts/k8s-tools.sh)", file=sys.stderr)
        return 2
    report = e2e(keep="--keep" in args, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
