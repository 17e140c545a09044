"""The chart's Pushgateway: on by default, the batch jobs' CINEPULSE_PUSHGATEWAY_URL filled
from its Service, scraped through a ServiceMonitor with honorLabels, reachable by the batch
jobs and Prometheus only; an explicit jobs.pushgatewayUrl wins; off: no URL unless given."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cinepulse_devstack import chart

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

DEFAULT = next(p for p in chart.scenarios() if p.name == "default-values.yaml")
NAME = f"{chart.RELEASE}-cinepulse-pushgateway"
URL = f"http://{NAME}:9091"


def render(*set_values: str) -> list[dict[str, Any]]:
    r = chart.render([DEFAULT], list(set_values))
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def config_url(docs: list[dict[str, Any]]) -> str | None:
    (cm,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and "CINEPULSE_TMDB__BASE_URL" in (d.get("data") or {})
    ]
    url: str | None = cm["data"].get("CINEPULSE_PUSHGATEWAY_URL")
    return url


def cronjob_urls(docs: list[dict[str, Any]]) -> set[str | None]:
    urls = set()
    for d in docs:
        if d["kind"] != "CronJob" or "spark" in d["metadata"]["name"]:
            continue
        (container,) = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        urls.add(env.get("CINEPULSE_PUSHGATEWAY_URL"))
    return urls


def test_the_default_release_runs_a_pushgateway_and_the_jobs_push_to_it() -> None:
    docs = render()
    deployment = one(docs, "Deployment", NAME)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "quay.io/prometheus/pushgateway:v1.5.1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["replicas"] == 1
    service = one(docs, "Service", NAME)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9091, "targetPort": "http", "protocol": "TCP"}
    ]
    monitor = one(docs, "ServiceMonitor", NAME)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] == "http"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert config_url(docs) == URL


def test_the_cronjobs_get_the_url_too() -> None:
    docs = render("jobs.cronJobs.enabled=true", "jobs.tmdbTokenSecret=tmdb")
    assert cronjob_urls(docs) == {URL}


def test_the_streaming_driver_gets_the_url_for_its_data_loss_stop() -> None:
    app = one(render(), "SparkApplication", f"{chart.RELEASE}-cinepulse-spark-stream")
    env = {e["name"]: e.get("value") for e in app["spec"]["driver"]["env"]}
    assert env["CINEPULSE_PUSHGATEWAY_URL"] == URL


def test_only_the_jobs_the_streaming_driver_and_prometheus_reach_it() -> None:
    policy = one(render(), "NetworkPolicy", f"{NAME}-ingress")
    push, scrape = policy["spec"]["ingress"]
    assert push["ports"] == scrape["ports"] == [{"port": 9091, "protocol": "TCP"}]
    assert [p["podSelector"]["matchLabels"] for p in push["from"]] == [
        # the streaming driver pushes its data-loss stop (the alert outlives its exit)
        {
            "app.kubernetes.io/instance": chart.RELEASE,
            "app.kubernetes.io/component": "spark-stream",
        },
        {"app.kubernetes.io/instance": chart.RELEASE, "cinepulse.io/network": "jobs"},
    ]
    assert "namespaceSelector" in scrape["from"][0]


def test_an_explicit_url_wins_and_off_means_none() -> None:
    other = "http://pushgateway.monitoring:9091"
    assert config_url(render(f"jobs.pushgatewayUrl={other}")) == other
    docs = render("pushgateway.enabled=false")
    assert not [d for d in docs if d["metadata"]["name"] == NAME]
    assert config_url(docs) is None
    assert not [d for d in docs if d["metadata"]["name"] == f"{NAME}-ingress"]


def test_values_document_it() -> None:
    values = yaml.safe_load((chart.chart_dir() / "values.yaml").read_text())
    assert values["pushgateway"]["enabled"] is True
    assert values["jobs"]["pushgatewayUrl"] == ""
