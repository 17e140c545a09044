"""The SparkApplication manifests are valid against the Spark operator's CRD, and the
streaming job can never end as completed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cinepulse_devstack.tmdb_offline import datasets_root

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "services" / "spark-jobs" / "deploy"
CRD = datasets_root().parent / "k8s-crds" / "sparkoperator.k8s.io_sparkapplications.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not CRD.exists():
        pytest.skip(f"the Spark operator CRD is not here ({CRD})")
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def manifests() -> list[Path]:
    return sorted(DEPLOY.glob("sparkapplication-*.yaml"))


def test_there_is_a_streaming_manifest() -> None:
    assert DEPLOY / "sparkapplication-staging.yaml" in manifests()


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_is_valid_against_the_crd(path: Path, schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert doc["kind"] == "SparkApplication"
    jsonschema.validate(doc, schema)
    assert doc["spec"]["sparkVersion"] == __import__("pyspark").__version__


def test_a_broken_manifest_is_refused(schema: dict[str, Any]) -> None:
    doc = yaml.safe_load((DEPLOY / "sparkapplication-staging.yaml").read_text())
    doc["spec"]["restartPolicy"]["type"] = "Sometimes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_the_streaming_job_always_restarts_and_keeps_its_checkpoint() -> None:
    doc = yaml.safe_load((DEPLOY / "sparkapplication-staging.yaml").read_text())
    spec = doc["spec"]
    assert spec["restartPolicy"]["type"] == "Always"
    env = {e["name"]: e for e in spec["driver"]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in spec["driver"]["volumeMounts"]}
    assert env["CINEPULSE_CHECKPOINT_DIR"]["value"] == mounts["checkpoints"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "persistentVolumeClaim" in volumes["checkpoints"]
    assert "secretKeyRef" in env["CINEPULSE_POSTGRES__DSN"]["valueFrom"]
    assert spec["driver"]["securityContext"]["runAsNonRoot"] is True
