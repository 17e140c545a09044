"""One scheduler for the aggregates: with ``airflow.enabled`` (Airflow's ``daily_aggregates``
DAG runs them) the chart renders no schedule of its own for them, with either Spark launcher;
the streaming job is unaffected. And Airflow with the chart's CronJobs is refused."""

from __future__ import annotations

from typing import Any

import pytest

from cinepulse_devstack import chart

try:
    chart.tool("helm")
except chart.ChartToolMissing as exc:  # make setup builds it
    pytest.skip(str(exc), allow_module_level=True)

DEFAULT = next(p for p in chart.scenarios() if p.name == "default-values.yaml")
AGGREGATES = f"{chart.RELEASE}-cinepulse-spark-aggregates"
STREAM = f"{chart.RELEASE}-cinepulse-spark-stream"


def render(*set_values: str) -> list[dict[str, Any]]:
    r = chart.render([DEFAULT], list(set_values))
    assert r.returncode == 0, r.stderr
    return chart.documents(r.stdout)


def kinds_named(docs: list[dict[str, Any]], name: str) -> set[str]:
    return {d["kind"] for d in docs if d["metadata"]["name"] == name}


def test_without_airflow_the_chart_schedules_the_aggregates() -> None:
    docs = render()
    assert "ScheduledSparkApplication" in kinds_named(docs, AGGREGATES)
    assert "CronJob" in kinds_named(render("spark.launcher=submit"), AGGREGATES)


def test_with_airflow_the_operator_launcher_has_no_aggregates_schedule() -> None:
    docs = render("airflow.enabled=true")
    assert not [d for d in docs if d["kind"] == "ScheduledSparkApplication"]
    assert not kinds_named(docs, AGGREGATES)
    assert "SparkApplication" in kinds_named(docs, STREAM)  # the stream stays


def test_with_airflow_the_submit_launcher_has_no_aggregates_cronjob() -> None:
    docs = render("airflow.enabled=true", "spark.launcher=submit")
    assert not kinds_named(docs, AGGREGATES)
    assert not kinds_named(docs, f"{AGGREGATES}-executor")
    assert "Deployment" in kinds_named(docs, STREAM)


def test_airflow_and_the_charts_cronjobs_are_refused_together() -> None:
    both = ["airflow.enabled=true", "jobs.cronJobs.enabled=true", "jobs.tmdbTokenSecret=tmdb"]
    r = chart.render([DEFAULT], both)
    assert r.returncode != 0
    assert "jobs.cronJobs.enabled and airflow.enabled are both true" in r.stderr


def test_the_value_is_in_the_schema() -> None:
    r = chart.render([DEFAULT], ["airflow.schedules=true"])
    assert r.returncode != 0 and "schedules" in r.stderr
