"""Prometheus metrics of a fallback, replay or promotion run (names start
``cinepulse_fallback_``), in a registry of their own: a batch job pushes exactly these to the
Pushgateway (``CINEPULSE_PUSHGATEWAY_URL``), grouped by the kind of job."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from cinepulse_common.jobs import push_metrics

REGISTRY = CollectorRegistry()

EVENTS_READ = Counter(
    "cinepulse_fallback_events_read_total", "Raw documents read from MongoDB", registry=REGISTRY
)
ROWS = Counter(
    "cinepulse_fallback_rows_total",
    "Rows inserted, by table (a fallback run's tables, or the main ones for a replay)",
    ["table"],
    registry=REGISTRY,
)
QUARANTINED = Counter(
    "cinepulse_fallback_quarantined_total",
    "Records quarantined, by rule",
    ["rule"],
    registry=REGISTRY,
)
LATE = Counter(
    "cinepulse_fallback_late_events_total",
    "Valid events that arrived later than the rules' late-data tolerance (still modelled)",
    registry=REGISTRY,
)
DURATION = Gauge(
    "cinepulse_fallback_run_duration_seconds", "Duration of the last run", registry=REGISTRY
)
LAST_STATUS = Gauge(
    "cinepulse_fallback_last_run_succeeded",
    "1 if the last run succeeded, else 0",
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "cinepulse_fallback_last_success_timestamp_seconds",
    "Unix time of the last successful run",
    registry=REGISTRY,
)


def push(url: str, kind: str) -> None:
    push_metrics(url, "cinepulse-pandas-fallback", REGISTRY, {"kind": kind})
