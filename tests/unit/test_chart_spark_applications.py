"""The chart's SparkApplications (the one definition of the Spark jobs: ``helm template
charts/cinepulse`` prints them): they run the image's Spark and a subcommand the entry point
knows, the classifier's model reaches driver and executors, the streaming job can never end
as completed, and the scheduled aggregates retry and never overlap. Their validity against
the Spark operator's CRDs is checked with every other object in tests/unit/test_chart_checks.py
(kubeconform, strict)."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

DEFAULT = next(p for p in chart.scenarios() if p.name == "default-values.yaml")
KINDS = ("SparkApplication", "ScheduledSparkApplication")


@pytest.fixture(scope="module")
def applications() -> dict[str, dict[str, Any]]:
    """The default rendering's Spark applications by kind (one of each)."""
    r = chart.render([DEFAULT])
    assert r.returncode == 0, r.stderr
    found = [d for d in chart.documents(r.stdout) if d["kind"] in KINDS]
    assert sorted(d["kind"] for d in found) == sorted(KINDS)
    return {d["kind"]: d for d in found}


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"].get("template", doc["spec"])


@pytest.mark.parametrize("kind", KINDS)
def test_each_runs_the_images_spark_and_a_known_subcommand(
    applications: dict[str, dict[str, Any]], kind: str
) -> None:
    doc = applications[kind]
    assert doc["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    spec = _spec(doc)
    assert spec["sparkVersion"] == __import__("pyspark").__version__
    from cinepulse_spark_jobs.__main__ import _parser

    _parser().parse_args(spec["arguments"])


@pytest.mark.parametrize("kind", KINDS)
def test_the_classifier_model_reaches_driver_and_executors(
    applications: dict[str, dict[str, Any]], kind: str
) -> None:
    spec = _spec(applications[kind])
    for role in ("driver", "executor"):
        names = {e["name"] for e in spec[role].get("env", [])}
        assert "CINEPULSE_EMOTION_MODEL" in names, role


def test_batch_jobs_retry_and_the_schedule_never_overlaps(
    applications: dict[str, dict[str, Any]],
) -> None:
    scheduled = applications["ScheduledSparkApplication"]
    assert scheduled["spec"]["concurrencyPolicy"] == "Forbid"
    template = scheduled["spec"]["template"]
    assert template["arguments"] == ["aggregate"]
    assert template["restartPolicy"]["type"] == "OnFailure"
    assert template["restartPolicy"]["onFailureRetries"] >= 1


def test_the_streaming_job_always_restarts_and_keeps_its_checkpoint(
    applications: dict[str, dict[str, Any]],
) -> None:
    spec = applications["SparkApplication"]["spec"]
    assert spec["arguments"] == ["stream"]
    assert spec["restartPolicy"]["type"] == "Always"
    env = {e["name"]: e for e in spec["driver"]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in spec["driver"]["volumeMounts"]}
    assert env["CINEPULSE_CHECKPOINT_DIR"]["value"] == mounts["checkpoints"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "persistentVolumeClaim" in volumes["checkpoints"]
    assert "secretKeyRef" in env["CINEPULSE_POSTGRES__DSN"]["valueFrom"]
    assert spec["driver"]["securityContext"]["runAsNonRoot"] is True
