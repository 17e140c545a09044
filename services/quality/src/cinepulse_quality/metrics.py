"""Prometheus metrics of a reconciliation (names start ``cinepulse_quality_``), in a registry
of their own: the job pushes exactly these to the Pushgateway (``CINEPULSE_PUSHGATEWAY_URL``),
where the alert rules read them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from cinepulse_quality.reconcile import Report

REGISTRY = CollectorRegistry()

RECORDS = Gauge(
    "cinepulse_quality_records",
    "Records of the last reconciled window accounted for, by store",
    ["store"],
    registry=REGISTRY,
)
DIFFERENCES = Gauge(
    "cinepulse_quality_differences",
    "Records of the last reconciled window by kind of difference (drift kinds and "
    "informational ones: deduplicated, pending_promotion, promoted)",
    ["kind"],
    registry=REGISTRY,
)
DRIFT = Gauge(
    "cinepulse_quality_drift",
    "1 if the last reconciled window drifted (a record not accounted for), else 0",
    registry=REGISTRY,
)
WINDOW_END = Gauge(
    "cinepulse_quality_window_end_timestamp_seconds",
    "Unix time of the end of the last reconciled window",
    registry=REGISTRY,
)
LAST_RUN = Gauge(
    "cinepulse_quality_last_run_timestamp_seconds",
    "Unix time of the last reconciliation that completed",
    registry=REGISTRY,
)


def record(report: Report) -> None:
    for store, n in report.counts.items():
        RECORDS.labels(store).set(n)
    for kind, n in report.differences.items():
        DIFFERENCES.labels(kind).set(n)
    DRIFT.set(1 if report.drift else 0)
    WINDOW_END.set(report.end.timestamp())
    LAST_RUN.set_to_current_time()
