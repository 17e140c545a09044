"""The end-to-end run (:func:`e2e`), its report, and ``python -m cinepulse_devstack.kube``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cinepulse_common.paths import repo_root
from cinepulse_devstack import chart
from cinepulse_devstack.kube.binaries import missing_binaries
from cinepulse_devstack.kube.checks import (
    _deployments_available,
    _eventually,
    _objects_accepted,
    _pod_security_enforced,
    _statefulsets_ready,
    apply_crds,
)
from cinepulse_devstack.kube.constants import (
    INSTALL_TIMEOUT,
    NAMESPACE,
    NODE_ALLOCATABLE,
    NODES,
    RELEASE,
    VOLUMES,
    WRITE_KEYS,
)
from cinepulse_devstack.kube.kwok import ClusterClient, KwokCluster, StepFailed
from cinepulse_devstack.kube.manifests import namespace_manifest, nodes_manifest
from cinepulse_devstack.kube.openapi import _kubeconform_openapi


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

            def api_deployment() -> list[dict[str, Any]]:
                return [
                    d
                    for d in c.get("deployments", "-n", NAMESPACE)
                    if d["metadata"]["name"].endswith("-api")
                ]

            # --wait returns once 3 are ready; the Deployment's status may lag a moment
            deadline = time.monotonic() + 30
            api = api_deployment()
            while (
                not api or api[0]["status"].get("availableReplicas") != 3
            ) and time.monotonic() < deadline:
                time.sleep(1)
                api = api_deployment()
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
