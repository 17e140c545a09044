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
    (configmap,) = values["extraConfigMaps"].values()
    env = yaml.safe_load(configmap["data"])
    raw = env[config.ENV_VARIABLE]
    monkeypatch.setenv(config.ENV_VARIABLE, raw)
    cfg = config.load()
    assert cfg["namespace"] == json.loads(raw)["namespace"] == "cinepulse"
    assert "configMapRef" in values["extraEnvFrom"]


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
    assert "## Airflow" in readme and "airflow/helm/values.yaml" in readme
    assert Path(HELM / "rbac-cinepulse.yaml").exists()
