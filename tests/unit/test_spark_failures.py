"""The streaming driver's reaction to a failed query: a data-loss stop raises its gauge and
is pushed to a real Pushgateway-compatible endpoint; any other failure raises nothing."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.unit.push_capture import Pushes, pushgateway  # noqa: F401 - the fixture

pytest.importorskip("pyspark")

from cinepulse_spark_jobs.failures import (
    DATA_LOSS_JOB,
    on_query_failed,
    watch_for_data_loss,
)

DATA_LOSS_ERROR = (
    "Cannot fetch offset 20 (GroupId: spark-kafka-source-1, TopicPartition: user_rating_log-0). "
    "Some data may have been lost because they are not available in Kafka any more; ... set "
    'the source option "failOnDataLoss" to "false".'
)


def _gauge(query: str) -> float | None:
    return REGISTRY.get_sample_value("cinepulse_spark_data_loss_stop", {"query": query})


def test_a_data_loss_stop_raises_the_gauge_and_is_pushed(
    pushgateway: Pushes,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    watch_for_data_loss(["events", "movies"])
    assert _gauge("events") == 0 and _gauge("movies") == 0
    on_query_failed("events", DATA_LOSS_ERROR, pushgateway.url)
    assert _gauge("events") == 1 and _gauge("movies") == 0
    assert "cinepulse-fallback replay" in capsys.readouterr().err
    [(method, path, body)] = pushgateway.received
    assert (method, path) == ("PUT", f"/metrics/job/{DATA_LOSS_JOB}/query/events")
    assert b"cinepulse_spark_data_loss_stop 1.0" in body
    assert b"cinepulse_spark_data_loss_stop_timestamp_seconds" in body


def test_another_failure_raises_nothing(pushgateway: Pushes) -> None:  # noqa: F811
    watch_for_data_loss(["movies"])
    on_query_failed("movies", "Connection to PostgreSQL refused", pushgateway.url)
    assert _gauge("movies") == 0
    assert pushgateway.received == []


def test_without_a_pushgateway_the_gauge_still_rises() -> None:
    watch_for_data_loss(["events"])
    on_query_failed("events", DATA_LOSS_ERROR, None)
    assert _gauge("events") == 1
