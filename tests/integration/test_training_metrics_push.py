"""The recommender training's pushed metrics on the real Pushgateway of the local stack: a
failed run after a successful one keeps the success's figures in the group (a failing Job
shows as an old last success, not as a success at 1970)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cinepulse_devstack import Stack

pytestmark = pytest.mark.integration


def _group(stack: Stack, job: str) -> dict[str, float]:
    text = httpx.get(f"{stack.pushgateway.url}/metrics", timeout=5).text
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("job") == job and s.name.startswith("cinepulse_recommender_training")
    }


def test_a_failed_run_keeps_the_last_success(stack: Stack) -> None:
    from cinepulse_recommender import training_metrics as tm

    group = f"{stack.pushgateway.url}/metrics/job/{tm.JOB}"
    httpx.delete(group, timeout=5).raise_for_status()
    try:
        tm.record(succeeded=True, seconds=12.0, published=True, pairs=1751)
        assert tm.push(stack.pushgateway.url, succeeded=True)
        first = _group(stack, tm.JOB)
        success = first["cinepulse_recommender_training_last_success_timestamp_seconds"]
        assert success > 0 and first["cinepulse_recommender_training_pairs"] == 1751

        tm.record(succeeded=False, seconds=3.0)
        assert tm.push(stack.pushgateway.url, succeeded=False)
        after = _group(stack, tm.JOB)
        assert after["cinepulse_recommender_training_last_run_succeeded"] == 0
        assert after["cinepulse_recommender_training_duration_seconds"] == 3.0
        assert after["cinepulse_recommender_training_last_success_timestamp_seconds"] == success
        assert after["cinepulse_recommender_training_pairs"] == 1751
    finally:
        httpx.delete(group, timeout=5).raise_for_status()
