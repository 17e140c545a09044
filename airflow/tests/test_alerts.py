"""Failure alerts: one ERROR log line always, a JSON POST when a webhook is configured."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cinepulse_airflow import alerts, config
from conftest import http_stub

CONTEXT = {
    "ti": SimpleNamespace(
        dag_id="tmdb_ingest", task_id="full_load", try_number=4, log_url="http://ui/log"
    ),
    "dag_run": SimpleNamespace(run_id="scheduled__2026-11-28T03:05:00+00:00"),
    "logical_date": "2026-11-28T03:05:00+00:00",
    "exception": RuntimeError("Pod returned a failure"),
}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []
    with http_stub(lambda method, path, body: got.append(json.loads(body))) as url:
        yield f"{url}/alert", got


def test_alert_is_logged_and_posted(
    receiver: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    url, got = receiver
    with caplog.at_level(logging.ERROR, logger="cinepulse.alerts"):
        payload = alerts.on_failure(CONTEXT, config.load({"alert_webhook_url": url}))
    assert payload == {
        "alert": "cinepulse_task_failed",
        "dag_id": "tmdb_ingest",
        "task_id": "full_load",
        "run_id": "scheduled__2026-11-28T03:05:00+00:00",
        "try_number": 4,
        "logical_date": "2026-11-28T03:05:00+00:00",
        "error": "RuntimeError: Pod returned a failure",
        "log_url": "http://ui/log",
    }
    assert got == [payload]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("cinepulse-alert ") and json.loads(line.split(" ", 1)[1]) == payload


def test_a_broken_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config.load({"alert_webhook_url": "http://127.0.0.1:9/none", "alert_timeout_s": 2})
    with caplog.at_level(logging.ERROR, logger="cinepulse.alerts"):
        alerts.on_failure(CONTEXT, cfg)
    assert any(
        "the webhook http://127.0.0.1:9/none failed" in r.getMessage() for r in caplog.records
    )


def test_without_a_webhook_only_the_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="cinepulse.alerts"):
        alerts.on_failure(CONTEXT, config.load())
    assert len(caplog.records) == 1
