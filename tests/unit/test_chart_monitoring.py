"""The chart's monitoring: the alert rules checked and unit-tested with promtool, the
dashboards' queries parsed (their Grafana variables expanded), and the local stack's scrape
labels mirroring the chart's ServiceMonitors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cinepulse_devstack import chart
from tests.unit.chart_support import pod_spec, require_tools

require_tools("helm")


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed (make setup installs Debian's prometheus)")
    return found


def _rules_file(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": chart.prometheus_rule_groups(docs)}))
    return path


def test_alert_rules_pass_promtool(tmp_path: Path, default_docs: list[dict[str, Any]]) -> None:
    rules = _rules_file(tmp_path, default_docs)
    r = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    names = {
        rule["alert"] for g in chart.prometheus_rule_groups(default_docs) for rule in g["rules"]
    }
    assert {
        "CinepulseGatewayErrorRatioHigh",
        "CinepulseGatewayProduceErrors",
        "CinepulseArchiverLagGrowing",
        "CinepulseStreamingStalled",
        "CinepulseFallbackActive",
        "CinepulseRecommenderModelTooOld",
        "CinepulseDataDrift",
    } <= names


def test_dashboard_queries_parse(tmp_path: Path, default_docs: list[dict[str, Any]]) -> None:
    queries = list(chart.dashboard_queries(default_docs))
    assert len(queries) >= 14
    # promtool parses PromQL offline when the queries are recording rules
    rules = [
        {"record": f"cinepulse:dashboard_query_{i}", "expr": expr}
        for i, (_title, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_fire_on_synthetic_series(
    tmp_path: Path, default_docs: list[dict[str, Any]]
) -> None:
    rules = _rules_file(tmp_path, default_docs)
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 10 requests/min, one of them a 503: a 10% error ratio
                    {
                        "series": 'cinepulse_gateway_http_requests_total{route="/api/events",method="POST",status="202"}',
                        "values": "0+9x20",
                    },
                    {
                        "series": 'cinepulse_gateway_http_requests_total{route="/api/events",method="POST",status="503"}',
                        "values": "0+1x20",
                    },
                    # the streaming job's last progress stays at t=0
                    {
                        "series": 'cinepulse_spark_last_progress_timestamp_seconds{query="events"}',
                        "values": "0x20",
                    },
                    {"series": "cinepulse_quality_drift", "values": "0 0 1x18"},
                    # the driver's gauge (0 while healthy), then the stop pushed at 4m
                    {"series": 'cinepulse_spark_data_loss_stop{query="events"}', "values": "0x20"},
                    {
                        "series": 'cinepulse_spark_data_loss_stop{job="cinepulse-spark-data-loss",query="events"}',
                        "values": "_x3 1x16",
                    },
                    {"series": "cinepulse_recommender_model_age_seconds", "values": "200000x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "12m",
                        "alertname": "CinepulseGatewayErrorRatioHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "More than 5% of the event gateway's answers are 5xx",
                                    "description": "10% of event requests failed over 5 minutes; frontends retry with their event ids, but Kafka may be unreachable (see CinepulseGatewayProduceErrors).",
                                },
                            }
                        ],
                    },
                    {"eval_time": "3m", "alertname": "CinepulseStreamingStalled", "exp_alerts": []},
                    {
                        "eval_time": "10m",
                        "alertname": "CinepulseStreamingStalled",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "The Spark streaming job made no progress",
                                    "description": "The events query's last progress was 10m 0s ago; the streaming_guard DAG runs the pandas fallback for the uncovered window.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "1m", "alertname": "CinepulseDataDrift", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "CinepulseDataDrift",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "The reconciliation found records not accounted for",
                                    "description": "See cinepulse_quality_differences by kind and the data_quality DAG's log for the positions.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "CinepulseRecommenderModelTooOld",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "The served recommendation model is old",
                                    "description": "The newest published model is 2d 7h 33m 20s old: the recommender_train DAG fails or never beats the current model.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "2m",
                        "alertname": "CinepulseStreamingDataLoss",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "CinepulseStreamingDataLoss",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "query": "events"},
                                "exp_annotations": {
                                    "summary": "The streaming job stopped because Kafka lost records it had not processed",
                                    "description": "The events query stopped rather than skip records that retention or a recreated topic removed; every restart stops again. Replay the gap from MongoDB with cinepulse-fallback replay, move the query's checkpoint aside, then delete the Pushgateway group job=cinepulse-spark-data-loss (docs/operations/reliability.md).",
                                },
                            }
                        ],
                    },
                    # no Kafka errors were recorded: this alert stays silent
                    {
                        "eval_time": "15m",
                        "alertname": "CinepulseGatewayProduceErrors",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "alerts-test.yaml"
    test_file.write_text(yaml.safe_dump(tests, width=1000))
    r = subprocess.run(
        [_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_are_grafana_json() -> None:
    for f in (chart.chart_dir() / "dashboards").glob("*.json"):
        dash = json.loads(f.read_text())
        assert dash["uid"] and dash["title"]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f.name
        for p in dash["panels"]:
            assert p["targets"], (f.name, p["title"])
            assert p["datasource"]["uid"] == "${datasource}"


def test_dashboard_variables_are_expanded_as_grafana_would() -> None:
    dashboard = {
        "templating": {"list": [{"name": "route", "current": {"value": ["/a", "/b"]}}]},
        "panels": [
            {
                "title": "row",
                "panels": [
                    {
                        "title": "p",
                        "targets": [
                            {"expr": 'sum(rate(x{namespace="$namespace"}[$__rate_interval]))'},
                            {
                                "expr": 'rate(y{route=~"${route:regex}"}[$__interval]) * [[__range_s]]'
                            },
                        ],
                    }
                ],
            }
        ],
    }
    doc = {
        "kind": "ConfigMap",
        "metadata": {"labels": {"grafana_dashboard": "1"}},
        "data": {"d.json": json.dumps(dashboard)},
    }
    assert list(chart.dashboard_queries([doc])) == [
        ("p", 'sum(rate(x{namespace="cinepulse"}[2m]))'),
        ("p", 'rate(y{route=~"/a|/b"}[1m]) * 21600'),
    ]
    # the local stack scrapes every 5 s: max(1m + 5s, 4 x 5s)
    assert chart.grafana_variables(5)["__rate_interval"] == "65s"
    with pytest.raises(KeyError, match=r"\$cluster"):
        chart.expand_grafana("up{cluster='$cluster'}", {})


def test_local_scrape_labels_mirror_the_monitors(
    tmp_path: Path, default_docs: list[dict[str, Any]]
) -> None:
    """Each service the local stack registers with Prometheus carries the labels the chart's
    ServiceMonitor (Spark's driver: PodMonitor) gives it in the cluster, so the alert rules and
    dashboards run locally unchanged (tests/integration/test_monitoring_live.py runs them)."""
    from cinepulse_devstack import Stack, StackSettings
    from cinepulse_devstack.services import PythonService

    monitors = chart.monitor_labels(default_docs)
    deployments = {d["metadata"]["name"]: d for d in default_docs if d["kind"] == "Deployment"}
    stack = Stack(StackSettings(root=tmp_path))
    # the Pushgateway's counterpart is the local Prometheus' static job, scraped with
    # honor_labels as the chart's ServiceMonitor does (honorLabels): the pushed series keep
    # the job/instance the batch jobs gave them in both
    gateway = monitors.pop(f"ServiceMonitor/{chart.RELEASE}-cinepulse-pushgateway")
    assert gateway["endpoint"] == "http"
    (local,) = [
        j for j in stack.prometheus.config()["scrape_configs"] if j["job_name"] == "pushgateway"
    ]
    assert local["honor_labels"] is True
    # its `up` carries the labels the ServiceMonitor gives the target in the cluster
    (target,) = local["static_configs"]
    assert gateway.items() <= target["labels"].items(), (gateway, target["labels"])
    matched: set[str] = set()
    for svc in stack.services:
        assert isinstance(svc, PythonService)
        if not svc.scraped:
            continue
        labels = svc.scrape_labels()
        mine = [m for m, want in monitors.items() if want.items() <= labels.items()]
        assert len(mine) == 1, (svc.name, labels, monitors)
        matched.update(mine)
        if "service" in labels:  # a Deployment behind the Service, its container so named
            pod = pod_spec(deployments[labels["service"]])
            assert labels["container"] in {c["name"] for c in pod["containers"]}
    assert matched == set(monitors), "a monitor of the chart has no local counterpart"
