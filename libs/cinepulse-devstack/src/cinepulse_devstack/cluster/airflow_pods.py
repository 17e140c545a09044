"""The e2e's Airflow step: every DAG run with ``dag.test()`` from ``airflow/.venv`` against
the real cluster, its KubernetesPodOperator tasks starting real pods from the node's images
beside the installed release (``airflow/tests/test_cluster_pods.py``, one test per DAG).

What the cluster provides for them, made here and removed after:

* the offline TMDB server, started on this machine, as an in-cluster Service: a Service with
  no selector (``<release>-tmdb-offline``, port 80) and an EndpointSlice naming this
  machine's address, so the fetcher's pod reaches TMDB by a cluster DNS name as it would the
  real API's;
* a ConfigMap for the pods (``<release>-airflow-e2e-config``): the chart's own
  ``<release>-cinepulse-config`` with the TMDB base URL pointing at that Service and the
  fetcher's rate raised (the offline server has no limit to respect);
* port-forwards to PostgreSQL: the owner's DSN for the tests' checks, the quality login's for
  the Airflow Connection ``cinepulse_postgres`` that ``streaming_guard`` reads with.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from cinepulse_common.paths import repo_root
from cinepulse_devstack.cluster import demo, release
from cinepulse_devstack.cluster.client import KubeClient
from cinepulse_devstack.kube import NAMESPACE, RELEASE, StepFailed

#: the longest the DAG runs may take together (five DAGs; Spark and training in pods)
TIMEOUT_S = 1500


def _apply(node: KubeClient, *docs: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))


def tmdb_service(node: KubeClient, url: str) -> str:
    """The in-cluster Service in front of the offline TMDB server at ``url``; its URL."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    name = f"{RELEASE}-tmdb-offline"
    labels = {"app.kubernetes.io/name": "tmdb-offline", "app.kubernetes.io/part-of": "e2e"}
    _apply(
        node,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": int(port)}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": NAMESPACE,
                "labels": {**labels, "kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": int(port), "protocol": "TCP"}],
        },
    )
    return f"http://{name}.{NAMESPACE}.svc"


def pods_config_map(node: KubeClient, tmdb_url: str) -> str:
    """The chart's batch ConfigMap with the in-cluster TMDB URL; its name."""
    chart_cm = json.loads(
        node.kubectl(
            "get", "configmap", "-n", NAMESPACE, release.fullname("config"), "-o", "json"
        ).stdout
    )
    name = f"{RELEASE}-airflow-e2e-config"
    data = {
        **chart_cm.get("data", {}),
        "CINEPULSE_TMDB__BASE_URL": tmdb_url,
        "CINEPULSE_TMDB__RATE_PER_S": "200",
    }
    _apply(
        node,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data,
        },
    )
    return name


def _cleanup(node: KubeClient) -> None:
    node.kubectl(
        "delete", "-n", NAMESPACE, "--ignore-not-found", "--wait=false",
        f"service/{RELEASE}-tmdb-offline", f"endpointslice/{RELEASE}-tmdb-offline-host",
        f"configmap/{RELEASE}-airflow-e2e-config", check=False,
    )  # fmt: skip


#: every DAG of airflow/dags; each test of test_cluster_pods.py names the DAGs it runs
DAGS = (
    "tmdb_ingest",
    "daily_aggregates",
    "data_quality",
    "recommender_train",
    "streaming_guard",
    "promote_fallback",
)


@dataclass(frozen=True)
class DagResult:
    """One DAG's outcome on the cluster: the test that ran it."""

    dag: str
    ok: bool
    detail: str
    seconds: float


def _results(junit: Path) -> list[tuple[str, str, str, float]]:
    """(test, outcome, message, seconds) of each test in pytest's JUnit report."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own file
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, (found.get("message") or "")[:300]
        rows.append((case.get("name", "?"), outcome, message, float(case.get("time", 0))))
    return rows


def by_dag(rows: list[tuple[str, str, str, float]]) -> list[DagResult]:
    """Each DAG's result: the test whose name contains it (no test: failed, saying so)."""
    out = []
    for dag in DAGS:
        mine = [r for r in rows if dag in r[0]]
        if not mine:
            out.append(DagResult(dag, False, "no test ran this DAG", 0.0))
            continue
        name, outcome, message, seconds = mine[0]
        out.append(DagResult(dag, outcome == "passed", f"{name}: {outcome} {message}", seconds))
    return out


def run(
    node: KubeClient, owner_dsn_at: str, quality_dsn_at: str, only: str = ""
) -> list[DagResult]:
    """Every DAG's pods on the cluster, one result per DAG. ``*_dsn_at``: the DSNs as
    reached from this machine (a port-forward); ``only``: a pytest ``-k`` expression (one
    DAG's test, when working on it). Raises :class:`StepFailed` when the tests could not
    run at all."""
    select = ["-k", only] if only else []
    airflow = repo_root() / "airflow"
    python = airflow / ".venv" / "bin" / "python"
    if not python.exists():
        raise StepFailed(f"{python} is missing: run `make setup` (Airflow's own environment)")
    try:
        with (
            demo.tmdb_server(node.host_address()) as tmdb,
            TemporaryDirectory(prefix="cinepulse-airflow-e2e-") as tmp,
        ):
            config_map = pods_config_map(node, tmdb_service(node, tmdb))
            junit = Path(tmp) / "junit.xml"
            spec = {
                "kubeconfig": str(node.kubeconfig()),
                "kubectl": node.tool("kubectl"),
                "namespace": NAMESPACE,
                "release": RELEASE,
                "config_map": config_map,
                "tmdb_secret": release.TMDB_SECRET,
                "owner_dsn": owner_dsn_at,
                "quality_dsn": quality_dsn_at,
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
            try:
                done = subprocess.run(
                    [str(python), "-m", "pytest", "-m", "cluster", "tests/test_cluster_pods.py",
                     *select, "-q", f"--junitxml={junit}"],
                    cwd=airflow, env={**env, "CINEPULSE_E2E_CLUSTER": json.dumps(spec)},
                    capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise StepFailed(
                    f"the Airflow tests ran over {TIMEOUT_S}s: {str(exc.stdout or '')[-3000:]}"
                ) from None
            rows = _results(junit) if junit.exists() else []
    finally:
        _cleanup(node)
    if not rows:
        raise StepFailed(f"the Airflow tests did not run (exit {done.returncode}): "
                         f"{(done.stdout + done.stderr)[-3000:]}")  # fmt: skip
    results = by_dag(rows)
    if only:
        results = [r for r in results if r.detail != "no test ran this DAG"]
    if done.returncode != 0 and all(r.ok for r in results):
        raise StepFailed(f"pytest exit {done.returncode}: {done.stdout[-3000:]}")
    return results
