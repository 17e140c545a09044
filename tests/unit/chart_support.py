"""Shared by the chart's unit tests (tests/unit/test_chart_*.py): the ci/ scenarios, each
rendered once per session, and accessors of the rendered objects."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from cinepulse_devstack import chart

#: scenario name (``ci/<name>-values.yaml``) -> values file
SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in chart.scenarios()}
DEFAULT = SCENARIOS["default"]
POD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}


def require_tools(*names: str) -> None:
    """Skip the calling module (at import) when a chart tool is missing; ``make setup``
    builds them, and in CI the skip fails the run (tests/skip_guard.py)."""
    try:
        for name in names:
            chart.tool(name)
    except chart.ChartToolMissing as exc:
        pytest.skip(str(exc), allow_module_level=True)


@functools.cache
def rendered_scenarios() -> dict[str, str]:
    """Every scenario's manifests (``helm template``), rendered once: treat as read-only."""
    out = {}
    for name, values in SCENARIOS.items():
        r = chart.render([values])
        assert r.returncode == 0, r.stderr
        out[name] = r.stdout
    return out


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]  # type: ignore[no-any-return]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def pods_of(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``Kind/name`` and pod spec of every object that runs pods."""
    for d in docs:
        if d["kind"] in POD_KINDS:
            yield f"{d['kind']}/{d['metadata']['name']}", pod_spec(d)


def job_of(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    """The one Job of ``component``."""
    (job,) = [
        d
        for d in docs
        if d["kind"] == "Job"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return job


def objects_of(docs: list[dict[str, Any]], component: str) -> dict[str, dict[str, Any]]:
    """``Kind`` -> the object of ``component`` (one per kind)."""
    return {
        d["kind"]: d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env: name -> value (or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
