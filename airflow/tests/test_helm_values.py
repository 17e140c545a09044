"""The deployment files: values for the official Airflow chart and the RBAC that lets the
release start pods in the Cinepulse namespace, checked against the DAGs they deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cinepulse_airflow import config
from conftest import AIRFLOW_DIR, REPO

HELM = AIRFLOW_DIR / "helm"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


@pytest.fixture(scope="module")
def rbac() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((HELM / "rbac-cinepulse.yaml").read_text()))


def test_executor_and_dag_delivery(values: dict[str, Any]) -> None:
    assert values["executor"] == "LocalExecutor"
    assert values["airflowVersion"] == "3.3.2"  # the version airflow/uv.lock pins
    git = values["dags"]["gitSync"]
    assert git["enabled"] is True and values["dags"]["persistence"]["enabled"] is False
    assert (REPO / git["subPath"]).resolve() == AIRFLOW_DIR / "dags"
    assert values["dagProcessor"]["enabled"] is True


def test_no_credentials_in_values(values: dict[str, Any]) -> None:
    assert values["postgresql"]["enabled"] is False
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert key not in values
    assert values["data"]["metadataSecretName"]
    assert "metadataConnection" not in values["data"]
    (conn,) = values["secret"]
    assert conn["envName"] == "AIRFLOW_CONN_" + config.DEFAULTS["postgres_conn_id"].upper()


def test_the_dags_configuration_in_the_values_is_valid(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Variable the values set parses, and every key in it is one config.py knows."""
    env = configmap_env(values, "{{ .Release.Name }}-cinepulse")
    raw = env[config.ENV_VARIABLE]
    monkeypatch.setenv(config.ENV_VARIABLE, raw)
    cfg = config.load()
    assert cfg["namespace"] == json.loads(raw)["namespace"] == "cinepulse"
    # the endpoints are not in the Variable (it would shadow their ConfigMap)
    assert not set(json.loads(raw)) & set(config.ENDPOINT_ENV)
    # with the cinepulse chart's bundled PostgreSQL every task keeps its own login's DSN
    dsns = {
        (spec["secret"], spec["key"])
        for name, spec in cfg["secrets"].items()
        if spec.get("env") == "CINEPULSE_POSTGRES__DSN"
    }
    assert dsns == {
        ("cinepulse-postgresql-logins", f"{s}-dsn")
        for s in ("fetcher", "fallback", "spark", "recommender", "quality")
    }
    refs = yaml.safe_load(values["extraEnvFrom"])
    assert [r["configMapRef"]["name"] for r in refs] == list(values["extraConfigMaps"])


ENDPOINTS = "{{ .Release.Name }}-cinepulse-endpoints"


def configmap_env(values: dict[str, Any], name: str) -> dict[str, str]:
    env: dict[str, str] = yaml.safe_load(values["extraConfigMaps"][name]["data"])
    return env


def helm_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of several -f files: maps merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = helm_merge(base[key], value)
        else:
            merged[key] = value
    return merged


def test_monitoring_endpoints_default_to_kube_prometheus_stack(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard's Prometheus and the alerts' Alertmanager are kube-prometheus-stack's Services
    (release `kube-prometheus-stack`, namespace `monitoring`), read by config.load()."""
    env = configmap_env(values, ENDPOINTS)
    assert set(env) == set(config.ENDPOINT_ENV.values())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = config.load()
    assert cfg["prometheus_url"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert (
        cfg["alertmanager_url"] == "http://kube-prometheus-stack-alertmanager.monitoring.svc:9093"
    )
    assert "prometheus-server" not in (HELM / "values.yaml").read_text()


def test_the_local_cluster_values_override_only_the_endpoints(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = yaml.safe_load((HELM / "values-local-cluster.yaml").read_text())
    assert list(local) == ["extraConfigMaps"] and list(local["extraConfigMaps"]) == [ENDPOINTS]
    merged = helm_merge(values, local)
    assert (
        merged["extraConfigMaps"]["{{ .Release.Name }}-cinepulse"]
        == (values["extraConfigMaps"]["{{ .Release.Name }}-cinepulse"])
    )
    for name, value in configmap_env(merged, ENDPOINTS).items():
        monkeypatch.setenv(name, value)
    cfg = config.load()
    # the local cluster's Prometheus: the operator's Service (cluster/monitoring.py)
    monitoring = REPO / "libs/cinepulse-devstack/src/cinepulse_devstack/cluster/monitoring.py"
    assert 'PROMETHEUS_SERVICE, PROMETHEUS_PORT = "prometheus-operated", 9090' in (
        monitoring.read_text()
    )
    assert cfg["prometheus_url"] == "http://prometheus-operated.monitoring.svc:9090"
    assert cfg["alertmanager_url"] == ""


def test_the_variable_overrides_the_endpoint_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CINEPULSE_AIRFLOW_PROMETHEUS_URL", "http://from-env:9090")
    assert config.load()["prometheus_url"] == "http://from-env:9090"
    monkeypatch.setenv(config.ENV_VARIABLE, json.dumps({"prometheus_url": "http://var:9090"}))
    assert config.load()["prometheus_url"] == "http://var:9090"


def test_rbac_grants_pods_in_the_cinepulse_namespace_only(
    values: dict[str, Any], rbac: list[dict[str, Any]]
) -> None:
    role, binding = rbac
    assert values["multiNamespaceMode"] is False  # no ClusterRole
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == config.DEFAULTS["namespace"]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"pods", "pods/log", "events"}  # never secrets
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    # LocalExecutor: the scheduler runs the tasks; the chart names its account <release>-scheduler
    assert [s["name"] for s in binding["subjects"]] == ["airflow-scheduler"]


def test_every_file_is_documented(values: dict[str, Any]) -> None:
    text = (HELM / "values.yaml").read_text()
    assert text.startswith("# Values for the official Apache Airflow Helm chart")
    readme = (REPO / "README.md").read_text()
    assert "docs/operations/airflow.md" in readme
    airflow_doc = (REPO / "docs/operations/airflow.md").read_text()
    assert "airflow/helm/values.yaml" in airflow_doc
    alerts_doc = (REPO / "docs/operations/alerts.md").read_text()
    assert "airflow/helm/values-local-cluster.yaml" in alerts_doc
    assert Path(HELM / "rbac-cinepulse.yaml").exists()
