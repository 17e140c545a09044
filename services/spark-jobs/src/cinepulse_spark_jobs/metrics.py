"""Prometheus metrics of the Spark jobs (names start ``cinepulse_spark_``).

Rows written per table and quarantined rows are counted by the writer of each micro-batch;
batch duration, input and processing rates and the offset lag come from Spark's own query
progress, through a :class:`StreamingQueryListener`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pyspark.sql.streaming import StreamingQueryListener

ROWS = Counter(
    "cinepulse_spark_rows_total",
    "Rows inserted into a table by micro-batches (a replayed row inserts nothing)",
    ["query", "table"],
)
QUARANTINED = Counter(
    "cinepulse_spark_quarantined_total", "Records quarantined, by rule", ["query", "rule"]
)
LATE = Counter(
    "cinepulse_spark_late_events_total",
    "Valid events that arrived later than the rules' late-data tolerance (still modelled)",
    ["query"],
)
BATCH_SECONDS = Histogram(
    "cinepulse_spark_batch_duration_seconds",
    "Micro-batch duration (Spark's query progress)",
    ["query"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
INPUT_RATE = Gauge("cinepulse_spark_input_rows_per_second", "Rows arriving per second", ["query"])
PROCESSED_RATE = Gauge(
    "cinepulse_spark_processed_rows_per_second", "Rows processed per second", ["query"]
)
LAG = Gauge(
    "cinepulse_spark_offset_lag",
    "Records behind the latest Kafka offsets at the end of the last micro-batch",
    ["query"],
)
LAST_PROGRESS = Gauge(
    "cinepulse_spark_last_progress_timestamp_seconds",
    "Unix time of the last query progress (a heartbeat: stale means the query is stuck)",
    ["query"],
)
#: the name of the data-loss gauge, on the driver's /metrics and in its Pushgateway group
DATA_LOSS_METRIC = "cinepulse_spark_data_loss_stop"
DATA_LOSS_HELP = (
    "1: the query stopped rather than skip Kafka records it had not processed (retention or "
    "a recreated topic removed them); the recovery is in docs/operations/reliability.md"
)
DATA_LOSS = Gauge(DATA_LOSS_METRIC, DATA_LOSS_HELP, ["query"])


def count_quarantine_rules(query: str, rules: Iterable[str]) -> None:
    """Start the query's quarantine counter of each rule at 0: the dashboard shows 0 rather
    than "no data", and rate() sees the first quarantined records (a series that first
    appears at N loses those N)."""
    for rule in rules:
        QUARANTINED.labels(query, rule)


def offset_lag(sources: list[Any]) -> int:
    """Sum over sources and partitions of latestOffset - endOffset (Kafka sources)."""
    lag = 0
    for source in sources:
        end, latest = _offsets(source.endOffset), _offsets(getattr(source, "latestOffset", None))
        for topic, parts in latest.items():
            for partition, offset in parts.items():
                lag += max(0, int(offset) - int(end.get(topic, {}).get(partition, offset)))
    return lag


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    if not value:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


class MetricsListener(StreamingQueryListener):
    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def onQueryStarted(self, event: Any) -> None:
        self._names[str(event.runId)] = event.name or "unnamed"
        LAST_PROGRESS.labels(event.name or "unnamed").set(time.time())

    def onQueryProgress(self, event: Any) -> None:
        p = event.progress
        name = p.name or "unnamed"
        BATCH_SECONDS.labels(name).observe(p.batchDuration / 1000.0)
        INPUT_RATE.labels(name).set(p.inputRowsPerSecond or 0.0)
        PROCESSED_RATE.labels(name).set(p.processedRowsPerSecond or 0.0)
        LAG.labels(name).set(offset_lag(list(p.sources)))
        LAST_PROGRESS.labels(name).set(time.time())

    def onQueryIdle(self, event: Any) -> None:
        # idle is alive: the heartbeat moves on even when no data arrives
        LAST_PROGRESS.labels(self._names.get(str(event.runId), "unnamed")).set(time.time())

    def onQueryTerminated(self, event: Any) -> None:
        pass
