"""What the streaming driver does when one of its queries fails.

Any failure stops the driver (exit 1) and the Spark operator restarts it. A failure that is
Kafka's *data loss* (``failOnDataLoss=true``: offsets the query has not processed are gone)
is more: a restart fails again the same way, and someone has to replay the gap. So it is
logged as critical with the recovery, and raised as ``cinepulse_spark_data_loss_stop`` = 1
for the ``CinepulseStreamingDataLoss`` alert: on the driver's own /metrics (0 from the
query's start, so the alert's expression has a series while healthy) and, because the
driver exits right after, pushed to the Pushgateway, where it stays until the operator
deletes the group once the gap is replayed (``DATA_LOSS_JOB``; the recovery says how).
"""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, Gauge

from cinepulse_common.jobs import push_metrics
from cinepulse_common.logging import get_logger
from cinepulse_spark_jobs.metrics import DATA_LOSS, DATA_LOSS_HELP, DATA_LOSS_METRIC
from cinepulse_spark_jobs.stream import DATA_LOSS_RECOVERY, is_data_loss

log = get_logger(__name__)

#: the Pushgateway job of a data-loss stop (grouped by query)
DATA_LOSS_JOB = "cinepulse-spark-data-loss"


def watch_for_data_loss(queries: list[str]) -> None:
    """Start each query's data-loss gauge at 0 (a series to alert on while healthy)."""
    for name in queries:
        DATA_LOSS.labels(name).set(0)


def report_data_loss(query: str, pushgateway_url: str | None) -> bool:
    """Raise the query's data-loss gauge and push it; returns whether it was pushed."""
    DATA_LOSS.labels(query).set(1)
    if not pushgateway_url:
        log.warning("no Pushgateway set: the data-loss gauge ends with this driver", query=query)
        return False
    registry = CollectorRegistry()
    Gauge(DATA_LOSS_METRIC, DATA_LOSS_HELP, registry=registry).set(1)
    Gauge(
        f"{DATA_LOSS_METRIC}_timestamp_seconds",
        "When the query stopped on Kafka data loss (Unix time)",
        registry=registry,
    ).set_to_current_time()
    return push_metrics(pushgateway_url, DATA_LOSS_JOB, registry, grouping_key={"query": query})


def on_query_failed(query: str, error: object, pushgateway_url: str | None) -> None:
    """Log a failed query; a data-loss stop also gets its recovery and its alert."""
    log.error("query failed", query=query, error=str(error)[:2000])
    if not is_data_loss(error):
        return
    log.critical(
        "Kafka data loss: the query stopped rather than skip records",
        query=query,
        recovery=DATA_LOSS_RECOVERY,
    )
    print(f"cinepulse-spark-jobs: {query}: {DATA_LOSS_RECOVERY}", file=sys.stderr)
    report_data_loss(query, pushgateway_url)
