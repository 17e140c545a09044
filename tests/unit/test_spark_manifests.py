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
CRDS = datasets_root().parent / "k8s-crds"
STREAM = DEPLOY / "sparkapplication-stream.yaml"


def _schema(kind: str) -> dict[str, Any]:
    crd_path = CRDS / f"sparkoperator.k8s.io_{kind.lower()}s.yaml"
    if not crd_path.exists():
        pytest.skip(f"the Spark operator CRD is not here ({crd_path})")
    crd = yaml.safe_load(crd_path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return _schema("SparkApplication")


def manifests() -> list[Path]:
    return sorted(DEPLOY.glob("*sparkapplication-*.yaml"))


def test_there_are_streaming_and_batch_manifests() -> None:
    names = {p.name for p in manifests()}
    assert {
        "sparkapplication-stream.yaml",
        "sparkapplication-aggregates.yaml",
        "scheduledsparkapplication-aggregates.yaml",
    } <= names


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_manifest_is_valid_against_the_crd(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert doc["kind"] in ("SparkApplication", "ScheduledSparkApplication")
    jsonschema.validate(doc, _schema(doc["kind"]))
    spec = doc["spec"].get("template", doc["spec"])
    assert spec["sparkVersion"] == __import__("pyspark").__version__
    # every job runs a subcommand the entry point knows
    from cinepulse_spark_jobs.__main__ import _parser

    _parser().parse_args(spec["arguments"])


def test_batch_jobs_retry_and_the_schedule_never_overlaps() -> None:
    batch = yaml.safe_load((DEPLOY / "sparkapplication-aggregates.yaml").read_text())
    assert batch["spec"]["restartPolicy"]["type"] == "OnFailure"
    assert batch["spec"]["restartPolicy"]["onFailureRetries"] >= 1
    scheduled = yaml.safe_load((DEPLOY / "scheduledsparkapplication-aggregates.yaml").read_text())
    assert scheduled["spec"]["concurrencyPolicy"] == "Forbid"
    assert scheduled["spec"]["template"]["arguments"] == ["aggregate"]


def test_the_classifier_model_reaches_driver_and_executors() -> None:
    doc = yaml.safe_load(STREAM.read_text())
    for role in ("driver", "executor"):
        names = {e["name"] for e in doc["spec"][role].get("env", [])}
        assert "CINEPULSE_EMOTION_MODEL" in names, role


def test_a_broken_manifest_is_refused(schema: dict[str, Any]) -> None:
    doc = yaml.safe_load(STREAM.read_text())
    doc["spec"]["restartPolicy"]["type"] = "Sometimes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_the_streaming_job_always_restarts_and_keeps_its_checkpoint() -> None:
    doc = yaml.safe_load(STREAM.read_text())
    spec = doc["spec"]
    assert spec["restartPolicy"]["type"] == "Always"
    env = {e["name"]: e for e in spec["driver"]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in spec["driver"]["volumeMounts"]}
    assert env["CINEPULSE_CHECKPOINT_DIR"]["value"] == mounts["checkpoints"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "persistentVolumeClaim" in volumes["checkpoints"]
    assert "secretKeyRef" in env["CINEPULSE_POSTGRES__DSN"]["valueFrom"]
    assert spec["driver"]["securityContext"]["runAsNonRoot"] is True
