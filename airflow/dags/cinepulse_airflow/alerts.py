"""Failure alerts, and what every Cinepulse DAG shares (retry policy, start, catch-up).

A failed task (after its retries) calls :func:`on_failure`: it logs one ERROR line
``cinepulse-alert {json}`` (the cluster's log pipeline can alert on it) and, when
``alertmanager_url`` is configured, POSTs the alert to Alertmanager's v2 API
(``POST {alertmanager_url}/api/v2/alerts``: a JSON *array* of alerts, each with ``labels``,
``annotations``, ``startsAt``, ``endsAt`` and ``generatorURL``). The alert is
``alertname=CinepulseAirflowTaskFailed`` with the DAG and task as labels (one alert per failing
task: a second failure of the same task refreshes it) and the run, try, error and log URL as
annotations; it resolves by itself ``alert_ttl_s`` after the failure.

Delivery that fails (no answer, or any non-2xx status) raises :class:`AlertDeliveryError`
after the log line is written: Airflow runs the callback after the task's failure is
recorded and logs the exception ("Failed to run task callback") in the task's log, so the
task's own error stays what the run shows and the lost alert is visible next to it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pendulum
from airflow.sdk import DAG

from cinepulse_airflow.config import Config, load

log = logging.getLogger("cinepulse.alerts")

ALERTNAME = "CinepulseAirflowTaskFailed"
API_PATH = "/api/v2/alerts"


class AlertDeliveryError(RuntimeError):
    """Alertmanager did not accept the alert (unreachable, or a non-2xx answer)."""


def alert_payload(context: Any) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exc = context.get("exception")
    return {
        "alert": "cinepulse_task_failed",
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": str(context.get("logical_date")),
        "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
        "log_url": getattr(ti, "log_url", None),
    }


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_alerts(
    payload: dict[str, Any], cfg: Config, now: datetime | None = None
) -> list[dict[str, Any]]:
    """``payload`` as the body Alertmanager's ``POST /api/v2/alerts`` takes: a list of one
    postable alert. Label and annotation values are strings; empty ones are left out
    (Alertmanager refuses an alert without labels, and an empty label is no label)."""
    now = now or datetime.now(UTC)
    labels = {
        "alertname": ALERTNAME,
        "severity": str(cfg["alert_severity"]),
        "service": "airflow",
        "dag_id": payload["dag_id"],
        "task_id": payload["task_id"],
    }
    summary = f"Airflow task {payload['dag_id']}.{payload['task_id']} failed"
    annotations = {
        "summary": summary,
        "description": payload["error"],
        "run_id": payload["run_id"],
        "try_number": payload["try_number"],
        "logical_date": payload["logical_date"],
        "log_url": payload["log_url"],
    }
    alert: dict[str, Any] = {
        "labels": {k: str(v) for k, v in labels.items() if v not in (None, "")},
        "annotations": {k: str(v) for k, v in annotations.items() if v not in (None, "")},
        "startsAt": _rfc3339(now),
        "endsAt": _rfc3339(now + timedelta(seconds=int(cfg["alert_ttl_s"]))),
    }
    if payload["log_url"]:
        alert["generatorURL"] = str(payload["log_url"])
    return [alert]


def send(alerts: list[dict[str, Any]], cfg: Config) -> None:
    """POST ``alerts`` to the configured Alertmanager; :class:`AlertDeliveryError` unless it
    answers 2xx."""
    url = str(cfg["alertmanager_url"]).rstrip("/") + API_PATH
    try:
        answer = httpx.post(url, json=alerts, timeout=float(cfg["alert_timeout_s"]))
    except httpx.HTTPError as exc:
        raise AlertDeliveryError(f"Alertmanager {url} unreachable: {exc}") from exc
    if not answer.is_success:
        raise AlertDeliveryError(
            f"Alertmanager {url} refused the alert: HTTP {answer.status_code} {answer.text[:500]}"
        )


def on_failure(context: Any, cfg: Config | None = None) -> dict[str, Any]:
    """The on_failure_callback: log (always), then POST the alert to Alertmanager (when
    configured; raises :class:`AlertDeliveryError` if it is not accepted)."""
    cfg = cfg or load()
    payload = alert_payload(context)
    log.error("cinepulse-alert %s", json.dumps(payload, default=str))
    if cfg["alertmanager_url"]:
        try:
            send(alertmanager_alerts(payload, cfg), cfg)
        except AlertDeliveryError as exc:
            log.error("cinepulse-alert: not delivered: %s", exc)
            raise
    return payload


def default_args(cfg: Config) -> dict[str, Any]:
    """Retries with exponential backoff and the failure alert, for every task."""
    return {
        "owner": "cinepulse",
        "retries": int(cfg["retries"]),
        "retry_delay": timedelta(seconds=int(cfg["retry_delay_s"])),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=int(cfg["max_retry_delay_s"])),
        "on_failure_callback": on_failure,
    }


START = pendulum.datetime(2026, 1, 1, tz="UTC")


def cinepulse_dag(
    cfg: Config, dag_id: str, doc: str | None, *, tags: list[str], **kwargs: Any
) -> DAG:
    """A DAG on its configured schedule (UTC cron; ``schedule=None`` for one triggered by
    hand only), never catching up, one run at a time, with :func:`default_args`; ``doc`` (the
    DAG file's docstring) is its documentation and its first sentence its description."""
    schedule = kwargs.pop("schedule") if "schedule" in kwargs else cfg.schedule(dag_id)
    return DAG(
        dag_id=dag_id,
        description=" ".join((doc or "").split()).split(". ")[0].removeprefix(f"{dag_id}: "),
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(cfg),
        tags=["cinepulse", *tags],
        doc_md=doc,
        **kwargs,
    )
