"""kubeconform against schemas derived from the API server's OpenAPI (``/openapi/v2``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from cinepulse_common.paths import default_cache
from cinepulse_devstack import chart
from cinepulse_devstack.kube.binaries import crds_dir, kube_version
from cinepulse_devstack.kube.kwok import KwokCluster, StepFailed


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
