"""Failure alerts: one ERROR log line always; an alert in Alertmanager's v2 API when
``alertmanager_url`` is set, checked against a real Alertmanager (``conftest.alertmanager``)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from cinepulse_airflow import alerts, config
from conftest import LiveAlertmanager


def context(dag_id: str = "tmdb_ingest") -> dict[str, Any]:
    return {
        "ti": SimpleNamespace(
            dag_id=dag_id, task_id="full_load", try_number=4, log_url="http://ui/log"
        ),
        "dag_run": SimpleNamespace(run_id="scheduled__2026-11-28T03:05:00+00:00"),
        "logical_date": "2026-11-28T03:05:00+00:00",
        "exception": RuntimeError("Pod returned a failure"),
    }


def unique_dag() -> str:
    """A DAG id of this test's own: the session's Alertmanager keeps every test's alerts."""
    return f"dag_{uuid.uuid4().hex[:10]}"


def test_the_alert_reaches_alertmanager_and_is_listed(
    alertmanager: LiveAlertmanager, caplog: pytest.LogCaptureFixture
) -> None:
    dag_id = unique_dag()
    cfg = config.load({"alertmanager_url": alertmanager.url})
    with caplog.at_level(logging.ERROR, logger="cinepulse.alerts"):
        payload = alerts.on_failure(context(dag_id), cfg)
    assert payload == {
        "alert": "cinepulse_task_failed",
        "dag_id": dag_id,
        "task_id": "full_load",
        "run_id": "scheduled__2026-11-28T03:05:00+00:00",
        "try_number": 4,
        "logical_date": "2026-11-28T03:05:00+00:00",
        "error": "RuntimeError: Pod returned a failure",
        "log_url": "http://ui/log",
    }
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("cinepulse-alert ") and json.loads(line.split(" ", 1)[1]) == payload

    (got,) = alertmanager.alerts(alertname=alerts.ALERTNAME, dag_id=dag_id)
    assert got["labels"] == {
        "alertname": "CinepulseAirflowTaskFailed",
        "severity": "warning",
        "service": "airflow",
        "dag_id": dag_id,
        "task_id": "full_load",
    }
    assert got["annotations"] == {
        "summary": f"Airflow task {dag_id}.full_load failed",
        "description": "RuntimeError: Pod returned a failure",
        "run_id": "scheduled__2026-11-28T03:05:00+00:00",
        "try_number": "4",
        "logical_date": "2026-11-28T03:05:00+00:00",
        "log_url": "http://ui/log",
    }
    assert got["status"]["state"] == "active"
    assert got["generatorURL"] == "http://ui/log"
    # resolves by itself alert_ttl_s (1 h) after the failure
    starts = datetime.fromisoformat(got["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(got["endsAt"].replace("Z", "+00:00"))
    assert abs((ends - starts).total_seconds() - 3600) < 2
    assert abs((datetime.now(UTC) - starts).total_seconds()) < 60


def test_a_second_failure_of_the_same_task_refreshes_one_alert(
    alertmanager: LiveAlertmanager,
) -> None:
    dag_id = unique_dag()
    cfg = config.load({"alertmanager_url": alertmanager.url + "/"})  # a trailing slash is fine
    alerts.on_failure(context(dag_id), cfg)
    second = context(dag_id)
    second["dag_run"] = SimpleNamespace(run_id="manual__2")
    alerts.on_failure(second, cfg)
    (got,) = alertmanager.alerts(dag_id=dag_id)
    assert got["annotations"]["run_id"] == "manual__2"


def test_the_old_flat_object_is_refused_by_alertmanager(alertmanager: LiveAlertmanager) -> None:
    """What the hook used to send (one flat JSON object): Alertmanager answers 400, which the
    hook only logged."""
    flat = alerts.alert_payload(context(unique_dag()))
    answer = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=flat, timeout=10)
    assert answer.status_code == 400
    # an alert without labels is refused too: the hook never sends one
    answer = httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[{"labels": {}}], timeout=10)
    assert answer.status_code == 400


def test_empty_values_are_left_out() -> None:
    ctx = context()
    ctx["ti"] = SimpleNamespace(dag_id="d", task_id="t", try_number=1, log_url=None)
    ctx["exception"] = None
    (alert,) = alerts.alertmanager_alerts(alerts.alert_payload(ctx), config.load())
    assert "generatorURL" not in alert
    assert "description" not in alert["annotations"] and "log_url" not in alert["annotations"]
    assert all(isinstance(v, str) and v for v in alert["labels"].values())


def test_a_refusing_alertmanager_raises_after_the_log_line(
    alertmanager: LiveAlertmanager, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-2xx answer (here Alertmanager's 404 for a wrong base URL) raises: Airflow logs
    the callback's exception in the task log; the task stays failed with its own error."""
    cfg = config.load({"alertmanager_url": f"{alertmanager.url}/wrong-prefix"})
    with (
        caplog.at_level(logging.ERROR, logger="cinepulse.alerts"),
        pytest.raises(alerts.AlertDeliveryError, match="HTTP 404"),
    ):
        alerts.on_failure(context(), cfg)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("cinepulse-alert {")
    assert "not delivered" in messages[1]


def test_an_unreachable_alertmanager_raises() -> None:
    cfg = config.load({"alertmanager_url": "http://127.0.0.1:9", "alert_timeout_s": 2})
    with pytest.raises(alerts.AlertDeliveryError, match="unreachable"):
        alerts.on_failure(context(), cfg)


def test_without_alertmanager_only_the_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="cinepulse.alerts"):
        alerts.on_failure(context(), config.load())
    assert len(caplog.records) == 1


def test_the_old_key_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="alert_webhook_url"):
        config.load({"alert_webhook_url": "http://x"})
