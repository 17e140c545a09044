"""The real node's Alertmanager manifests and what the e2e expects of the chart's alert and
of the batch Jobs' pushes (cinepulse_devstack.cluster.alerting), without starting anything:
a renamed metric or alert must fail here, not after half an hour on the node."""

from __future__ import annotations

import importlib

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cinepulse_devstack.cluster import alerting, images, monitoring, release
from cinepulse_devstack.kube import bin_dir


@pytest.fixture()
def stamped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The version scripts/k8s-tools.sh stamps, whether or not it has run here."""
    monkeypatch.setattr(alerting, "built_version", lambda binary: "v0.28.1")


def test_alertmanager_runs_restricted_and_prometheus_sends_to_it(stamped: None) -> None:
    docs = list(yaml.safe_load_all(alerting.manifests("am:0.28.1")))
    by_kind = {d["kind"]: d for d in docs}
    am = by_kind["Alertmanager"]
    assert am["metadata"]["namespace"] == monitoring.MONITORING_NS
    spec = am["spec"]
    assert spec["version"] == "v0.28.1" and spec["image"] == "am:0.28.1"
    assert spec["replicas"] == 1 and spec["imagePullPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # the operator reads alertmanager-<name>; the route ends in a receiver without notifiers
    secret = by_kind["Secret"]
    assert secret["metadata"]["name"] == f"alertmanager-{alerting.ALERTMANAGER}"
    config = yaml.safe_load(secret["stringData"]["alertmanager.yaml"])
    assert config["route"]["receiver"] == "null"
    assert config["receivers"] == [{"name": "null"}]
    # only the alerting field of the Prometheus: applied by another field manager than the
    # rest, so the monitoring module's apply keeps it and this one removes nothing
    prom = by_kind["Prometheus"]
    assert prom["metadata"]["name"] == monitoring.PROMETHEUS
    assert list(prom["spec"]) == ["alerting"]
    (target,) = prom["spec"]["alerting"]["alertmanagers"]
    assert target["name"] == alerting.ALERTMANAGER_SERVICE and target["apiVersion"] == "v2"


def test_alertmanager_is_an_image_of_its_own() -> None:
    repo, path, user = images.SCRATCH_BINARIES["alertmanager"]
    assert path == "/bin/alertmanager" and user.startswith("65534:")
    assert repo not in {
        r for b, (r, _, _) in images.SCRATCH_BINARIES.items() if b != "alertmanager"
    }
    stamp = bin_dir() / ".alertmanager.version"
    if stamp.is_file():  # built here: the image is tagged with the build's version
        assert images.binary_image("alertmanager").endswith(":" + stamp.read_text().strip()[1:])


@pytest.mark.parametrize(
    ("module", "job"),
    [("cinepulse_tmdb_fetcher.metrics", "cinepulse-tmdb-fetcher"),
     ("cinepulse_quality.metrics", "cinepulse-quality"),
     ("cinepulse_recommender.training_metrics", "cinepulse-recommender-training")],
)  # fmt: skip
def test_the_series_the_e2e_expects_are_the_ones_the_jobs_push(module: str, job: str) -> None:
    found = vars(importlib.import_module(module)).values()
    registries = [r for r in found if isinstance(r, CollectorRegistry)]
    # a labelled counter has no sample before its first labels(): the family's exposed name
    names = {
        m.name + ("_total" if m.type == "counter" else "")
        for registry in registries
        for m in registry.collect()
    }
    # push_time_seconds is the Pushgateway's own, added to every pushed group
    expected = {n for n in alerting.PUSHED[job] if n != "push_time_seconds"}
    assert expected <= names, f"{job} pushes {sorted(names)}"


def test_the_alert_fired_on_purpose_is_the_charts_and_fires_without_delay() -> None:
    rules = [d for d in yaml.safe_load_all(release.render())
             if d and d["kind"] == "PrometheusRule"]  # fmt: skip
    found = [r for pr in rules for g in pr["spec"]["groups"] for r in g["rules"]
             if r.get("alert") == alerting.ALERT]  # fmt: skip
    assert len(found) == 1, f"{alerting.ALERT} in the chart's rules: {len(found)}"
    (rule,) = found
    assert "for" not in rule, "a `for` would outlast the e2e's wait"
    assert "cinepulse_spark_data_loss_stop" in rule["expr"] and "by (query)" in rule["expr"]
    labels = {**rule["labels"], "alertname": alerting.ALERT, "query": alerting.ALERT_QUERY}
    assert labels == alerting.ALERT_LABELS
    # the group the streaming job pushes on a data loss: the e2e pushes what it would
    failures = importlib.import_module("cinepulse_spark_jobs.failures")
    metrics = importlib.import_module("cinepulse_spark_jobs.metrics")
    assert alerting.ALERT_JOB == failures.DATA_LOSS_JOB
    assert metrics.DATA_LOSS_METRIC == "cinepulse_spark_data_loss_stop"
