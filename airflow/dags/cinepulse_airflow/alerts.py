"""Failure alerts, and what every Cinepulse DAG shares (retry policy, start, catch-up).

A failed task (after its retries) calls :func:`on_failure`: it logs one ERROR line
``cinepulse-alert {json}`` (the cluster's log pipeline can alert on it) and, when
``alert_webhook_url`` is configured, POSTs the same JSON to it (an Alertmanager/Slack-style
webhook receiver). A webhook that fails is logged, never raised: the alert must not hide the
task's own error.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pendulum
from airflow.sdk import DAG

from cinepulse_airflow.config import Config, load

log = logging.getLogger("cinepulse.alerts")


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


def on_failure(context: Any, cfg: Config | None = None) -> dict[str, Any]:
    """The on_failure_callback: log (always) and POST (when configured) one alert."""
    cfg = cfg or load()
    payload = alert_payload(context)
    log.error("cinepulse-alert %s", json.dumps(payload, default=str))
    url = cfg["alert_webhook_url"]
    if url:
        try:
            httpx.post(url, json=payload, timeout=float(cfg["alert_timeout_s"])).raise_for_status()
        except httpx.HTTPError as exc:
            log.error("cinepulse-alert: the webhook %s failed: %s", url, exc)
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
    """A DAG on its configured schedule (UTC cron), never catching up, one run at a time, with
    :func:`default_args`; ``doc`` (the DAG file's docstring) is its documentation and its
    first sentence its description."""
    return DAG(
        dag_id=dag_id,
        description=" ".join((doc or "").split()).split(". ")[0].removeprefix(f"{dag_id}: "),
        schedule=cfg.schedule(dag_id),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(cfg),
        tags=["cinepulse", *tags],
        doc_md=doc,
        **kwargs,
    )
