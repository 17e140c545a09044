"""The real-cluster e2e's Airflow step, without a cluster: which images the node gets, and
how the Airflow tests' JUnit report becomes one result per DAG."""

from __future__ import annotations

from pathlib import Path

from cinepulse_devstack.cluster import airflow_pods, release
from tests.unit.chart_support import require_tools

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="test_cluster_pods" name="test_tmdb_ingest_runs_the_fetcher" time="12.5"/>
<testcase classname="test_cluster_pods" name="test_daily_aggregates_runs_spark" time="30.0">
<failure message="assert 'failed' == 'success'">...</failure></testcase>
<testcase classname="test_cluster_pods" name="test_streaming_guard_then_promote_fallback"
 time="15.0"/>
</testsuite></testsuites>
"""


def test_each_dag_gets_its_tests_outcome_and_a_dag_no_test_ran_fails(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    results = {r.dag: r for r in airflow_pods.by_dag(airflow_pods._results(junit))}
    assert set(results) == set(airflow_pods.DAGS)
    assert results["tmdb_ingest"].ok and results["tmdb_ingest"].seconds == 12.5
    assert not results["daily_aggregates"].ok
    assert "assert 'failed' == 'success'" in results["daily_aggregates"].detail
    # one test covers both the guard and the promotion of its run
    assert results["streaming_guard"].ok and results["promote_fallback"].ok
    for dag in ("data_quality", "recommender_train"):
        assert not results[dag].ok and results[dag].detail == "no test ran this DAG"


def test_the_node_gets_the_images_only_airflow_pods_use() -> None:
    require_tools("helm")
    refs = release.node_images()
    chart_refs = set(release.images.images_in(release.render()))
    assert chart_refs < set(refs)
    tag = next(r for r in refs if "/tmdb-fetcher:" in r).rsplit(":", 1)[1]
    assert set(refs) - chart_refs == {f"localhost/cinepulse/pandas-fallback:{tag}"}
