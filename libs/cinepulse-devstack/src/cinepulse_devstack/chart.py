"""Checks of the Helm chart (``charts/cinepulse``) that need no cluster: lint, render each
scenario (``ci/*-values.yaml``), validate every object with kubeconform against the
Kubernetes JSON schemas and the CRDs in ``../shared/k8s-crds``, score with kube-score, and
hand the alert rules to promtool.

The tools (helm, kubeconform, kube-score) are built from the Go module proxy by
``make setup`` into ``~/.cache/cinepulse/bin``. No schema is downloaded: the Kubernetes
schemas come from the ``kubernetes-validate`` package (PyPI), rewritten here into the
standalone form kubeconform reads (its own ``$ref`` layout points at an absolute path), and
the CRDs' OpenAPI schemas are converted like kubeconform's ``openapi2jsonschema`` does, with
``additionalProperties: false`` (strict).

``python -m cinepulse_devstack.chart`` runs every check and prints a table with timings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cinepulse_common.paths import datasets_root, default_cache, repo_root
from cinepulse_devstack.config import CHART_NAMESPACE, CHART_RELEASE

#: the Kubernetes version the chart is rendered and validated for
KUBE_VERSION = "1.34.0"
#: the release name and namespace the chart is rendered with (the local stack's Prometheus
#: targets carry the labels the monitors of this release give in that namespace)
RELEASE = CHART_RELEASE
NAMESPACE = CHART_NAMESPACE
#: kube-score tests switched off for the whole chart, each with its reason
KUBE_SCORE_IGNORED: dict[str, str] = {
    "container-image-pull-policy": "images are pinned by tag (never :latest) and kind loads "
    "them locally, so IfNotPresent is right; Always would break kind installs",
}
#: kube-score flags with the same role
KUBE_SCORE_FLAGS: dict[str, str] = {
    "--ignore-container-cpu-limit": "CPU is requested, not limited: a CPU limit throttles the "
    "latency-sensitive services (gateway, api, recommender) under bursts",
}


class ChartToolMissing(RuntimeError):
    """A tool is not built yet (``make setup`` builds it)."""


def chart_dir() -> Path:
    return repo_root() / "charts" / "cinepulse"


def tool(name: str) -> str:
    """A chart tool from the project cache, else from PATH."""
    cached = default_cache() / "bin" / name
    if cached.is_file():
        return str(cached)
    found = shutil.which(name)
    if found:
        return found
    raise ChartToolMissing(f"{name} not found in {cached.parent} or on PATH: run make setup")


def scenarios() -> list[Path]:
    return sorted((chart_dir() / "ci").glob("*-values.yaml"))


def _run(args: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)


def lint(values: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [tool("helm"), "lint", "--strict", "--kube-version", KUBE_VERSION, str(chart_dir())]
    if values is not None:
        args += ["-f", str(values)]
    return _run(args)


def render(
    values: Iterable[Path] = (),
    set_values: Iterable[str] = (),
    release: str = RELEASE,
    *,
    is_upgrade: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` (hooks and tests included; as an install, or as an upgrade with
    ``is_upgrade``); stdout is the manifest stream."""
    args = [tool("helm"), "template", release, str(chart_dir()), "--kube-version", KUBE_VERSION]
    if is_upgrade:
        args.append("--is-upgrade")
    args += ["--namespace", NAMESPACE]
    for f in values:
        args += ["-f", str(f)]
    for s in set_values:
        args += ["--set", s]
    return _run(args)


def documents(manifests: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifests) if d]


# ------------------------------------------------------------------------------ schemas


def _inline(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    """``node`` with every ``#/$defs/`` reference replaced by its definition; a recursive
    type (the CRD type's JSONSchemaProps) accepts anything below its second occurrence."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            name = ref.split("#/$defs/", 1)[1]
            if name in seen:
                return {}
            out = _inline(defs[name], defs, seen | {name})
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**out, **_inline(rest, defs, seen)} if rest else out
        return {k: _inline(v, defs, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs, seen) for v in node]
    return node


def kubernetes_schemas(version: str = KUBE_VERSION) -> Path:
    """Standalone strict JSON schemas of Kubernetes ``version`` (cached)."""
    out = default_cache() / "k8s-schemas" / f"v{version}"
    if (out / ".complete").exists():
        return out
    import kubernetes_validate  # the dev dependency shipping the schemas

    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    src = src / f"v{version}-local-strict"
    if not src.is_dir():
        raise ChartToolMissing(f"kubernetes-validate has no schemas for {version} ({src})")
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.json"):
        if f.name.startswith("_"):
            continue
        schema = _inline(json.loads(f.read_text()), defs, frozenset())
        schema.pop("$id", None)
        (out / f.name).write_text(json.dumps(schema))
    (out / ".complete").touch()
    return out


def _strict(node: Any) -> None:
    if isinstance(node, dict):
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)


def crd_schemas(crds: Path | None = None) -> Path:
    """JSON schemas of the CRDs (``<group>/<kind>_<version>.json``), strict."""
    crds = crds or datasets_root().parent / "k8s-crds"
    out = default_cache() / "crd-schemas"
    files = sorted(crds.glob("*.yaml"))
    if not files:
        raise ChartToolMissing(f"no CRDs in {crds}")
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            kind, group = doc["spec"]["names"]["kind"].lower(), doc["spec"]["group"]
            for v in doc["spec"]["versions"]:
                schema = v["schema"]["openAPIV3Schema"]
                _strict(schema)
                target = out / group / f"{kind}_{v['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))
    return out


def kubeconform(manifests: str) -> subprocess.CompletedProcess[str]:
    """Every object against its schema (strict: unknown fields fail); no schema = error."""
    k8s, crd = kubernetes_schemas(), crd_schemas()
    return _run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "text",
            "-kubernetes-version",
            KUBE_VERSION,
            "-schema-location",
            str(k8s.parent) + "/{{ .NormalizedKubernetesVersion }}/{{ .ResourceKind }}"
            "{{ .KindSuffix }}.json",
            "-schema-location",
            str(crd) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            "-",
        ],
        stdin=manifests,
    )


@dataclass(frozen=True)
class Finding:
    level: str  # CRITICAL | WARNING
    text: str


def kube_score(manifests: str, extra_ignores: Iterable[str] = ()) -> list[Finding]:
    """kube-score's findings that are not OK (with the chart-wide ignores applied)."""
    args = [tool("kube-score"), "score", "-o", "ci", *KUBE_SCORE_FLAGS]
    for test in (*KUBE_SCORE_IGNORED, *extra_ignores):
        args += ["--ignore-test", test]
    result = _run([*args, "-"], stdin=manifests)
    findings = []
    for line in result.stdout.splitlines():
        for level in ("CRITICAL", "WARNING"):
            if line.startswith(f"[{level}]"):
                findings.append(Finding(level, line.removeprefix(f"[{level}]").strip()))
    return findings


# ------------------------------------------------------------------------------ monitoring


def prometheus_rule_groups(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``groups`` of every rendered PrometheusRule (a Prometheus rule file's body)."""
    groups: list[dict[str, Any]] = []
    for d in docs:
        if d.get("kind") == "PrometheusRule":
            groups.extend(d["spec"]["groups"])
    return groups


def _duration(seconds: float) -> str:
    """A PromQL duration (Grafana writes whole units: ``2m``, ``90s``, ``500ms``)."""
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def grafana_variables(
    scrape_interval_s: float = 30.0, interval_s: float = 60.0, range_s: float = 6 * 3600
) -> dict[str, str]:
    """Grafana's global variables as it expands them in a Prometheus query: ``$__interval``
    (the panel's step), ``$__rate_interval`` (``max($__interval + scrape interval, 4 x scrape
    interval)``, the scrape interval being the data source's setting) and ``$__range``. The
    defaults: the chart's ServiceMonitor interval (30 s), a 1 min step on a 6 h dashboard."""
    rate = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    return {
        "__interval": _duration(interval_s),
        "__interval_ms": str(int(interval_s * 1000)),
        "__rate_interval": _duration(rate),
        "__rate_interval_ms": str(int(rate * 1000)),
        "__range": _duration(range_s),
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }


#: ``$var``, ``${var}``, ``${var:format}``, ``[[var]]``
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def dashboard_variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """The dashboard's own template variables at their current value (a multi-value
    selection as Grafana writes it in a regex matcher: ``a|b``; All: ``.*``)."""
    out: dict[str, str] = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if current in (None, "$__all"):
            current = var.get("allValue") or ".*"
        out[var["name"]] = str(current)
    return out


def expand_grafana(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with every Grafana variable replaced; an unknown one is a :class:`KeyError`
    naming it (promtool and Prometheus would only say the query does not parse)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _GRAFANA_VARIABLE.sub(value, expr)


def dashboard_queries(
    docs: Iterable[dict[str, Any]],
    *,
    scrape_interval_s: float = 30.0,
    variables: dict[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every dashboard ConfigMap's panels, with the variables
    expanded as Grafana would (:func:`grafana_variables`, the dashboard's own, then
    ``variables``: e.g. ``{"namespace": NAMESPACE}``)."""
    for d in docs:
        if d.get("kind") != "ConfigMap" or "grafana_dashboard" not in (
            d["metadata"].get("labels") or {}
        ):
            continue
        for body in d["data"].values():
            dashboard = json.loads(body)
            known = grafana_variables(scrape_interval_s) | {"namespace": NAMESPACE}
            known |= dashboard_variables(dashboard) | (variables or {})
            for panel in _panels(dashboard["panels"]):
                for target in panel.get("targets", []):
                    if target.get("expr"):
                        yield panel["title"], expand_grafana(target["expr"], known)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def monitor_labels(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """For each ServiceMonitor and PodMonitor (``Kind/name``), the target labels the
    Prometheus operator gives what it scrapes (its defaults, no ``jobLabel``): a
    ServiceMonitor's targets ``job`` and ``service`` = the Service's name, ``namespace``,
    ``endpoint`` = the port's name; a PodMonitor's ``job`` = ``<namespace>/<name>``."""
    docs = list(docs)
    services = [d for d in docs if d.get("kind") == "Service"]
    out: dict[str, dict[str, str]] = {}
    for d in docs:
        kind, spec = d.get("kind"), d.get("spec") or {}
        name = d.get("metadata", {}).get("name", "")
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        if kind == "ServiceMonitor":
            for svc in services:
                labels = svc["metadata"].get("labels") or {}
                if any(labels.get(k) != v for k, v in wanted.items()):
                    continue
                svc_name = svc["metadata"]["name"]
                job = labels.get(spec["jobLabel"], svc_name) if spec.get("jobLabel") else svc_name
                for endpoint in spec.get("endpoints", []):
                    out[f"{kind}/{name}"] = {
                        "job": job,
                        "namespace": NAMESPACE,
                        "service": svc_name,
                        "endpoint": str(endpoint.get("port", "")),
                    }
        elif kind == "PodMonitor":
            for endpoint in spec.get("podMetricsEndpoints", []):
                out[f"{kind}/{name}"] = {
                    "job": f"{NAMESPACE}/{name}",
                    "namespace": NAMESPACE,
                    "endpoint": str(endpoint.get("port", "")),
                }
    return out


# ------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Every check for every scenario; a table of results and timings; non-zero on failure."""
    rows: list[tuple[str, str, str, float]] = []
    failed = False

    def record(check: str, scenario: str, ok: bool, detail: str, t0: float) -> None:
        nonlocal failed
        failed |= not ok
        rows.append((check, scenario, ("ok " if ok else "FAIL ") + detail, time.monotonic() - t0))

    for values in scenarios():
        name = values.name.removesuffix("-values.yaml")
        t0 = time.monotonic()
        r = lint(values)
        record("helm lint --strict", name, r.returncode == 0, "", t0)
        t0 = time.monotonic()
        rendered = render([values])
        record("helm template", name, rendered.returncode == 0, rendered.stderr.strip(), t0)
        if rendered.returncode:
            continue
        t0 = time.monotonic()
        k = kubeconform(rendered.stdout)
        summary = (k.stdout.strip().splitlines() or [""])[-1]
        record("kubeconform -strict", name, k.returncode == 0, summary, t0)
        t0 = time.monotonic()
        ignores = ["pod-networkpolicy"] if name == "dev" else []
        findings = kube_score(rendered.stdout, ignores)
        critical = [f for f in findings if f.level == "CRITICAL"]
        record(
            "kube-score",
            name,
            not critical,
            f"{len(critical)} critical, {len(findings) - len(critical)} warnings",
            t0,
        )
    width = max(len(r[0]) for r in rows)
    for check, scenario, result, seconds in rows:
        print(f"{check:<{width}}  {scenario:<9} {seconds:6.2f}s  {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
