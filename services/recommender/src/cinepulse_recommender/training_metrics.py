"""Prometheus metrics of a training run (names start ``cinepulse_recommender_training_``): the
training Job pushes them to the Pushgateway (``CINEPULSE_PUSHGATEWAY_URL``, job
``cinepulse-recommender-training``) when it ends, whatever the outcome, so a Job that keeps
failing shows as an old last success. Two registries: every run pushes its outcome
(:data:`RUN`); only a successful one also pushes the success's figures (:data:`SUCCESS`).
A failed run adds its outcome to the group (POST) and leaves the last success's figures
there; unset gauges would otherwise be pushed as 0 and erase them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge

from cinepulse_common.jobs import push_metrics

JOB = "cinepulse-recommender-training"
RUN = CollectorRegistry()
SUCCESS = CollectorRegistry()

LAST_RUN = Gauge(
    "cinepulse_recommender_training_last_run_timestamp_seconds",
    "Unix time the last training run ended (any outcome)",
    registry=RUN,
)
SUCCEEDED = Gauge(
    "cinepulse_recommender_training_last_run_succeeded",
    "1 if the last training run trained and evaluated a model (published or not), else 0",
    registry=RUN,
)
LAST_SUCCESS = Gauge(
    "cinepulse_recommender_training_last_success_timestamp_seconds",
    "Unix time of the last training run that succeeded",
    registry=SUCCESS,
)
PUBLISHED = Gauge(
    "cinepulse_recommender_training_published",
    "1 if the last successful run published its model (it beat the served one), else 0",
    registry=SUCCESS,
)
DURATION = Gauge(
    "cinepulse_recommender_training_duration_seconds",
    "Duration of the last training run",
    registry=RUN,
)
PAIRS = Gauge(
    "cinepulse_recommender_training_pairs",
    "(user, movie) interactions the last successful run trained on",
    registry=SUCCESS,
)


def record(*, succeeded: bool, seconds: float, published: bool = False, pairs: int = 0) -> None:
    now = time.time()
    LAST_RUN.set(now)
    DURATION.set(seconds)
    SUCCEEDED.set(1 if succeeded else 0)
    if succeeded:
        LAST_SUCCESS.set(now)
        PUBLISHED.set(1 if published else 0)
        PAIRS.set(pairs)


def push(url: str | None, *, succeeded: bool) -> bool:
    """Push the run's outcome (and a success's figures) when a Pushgateway is set; a failed
    push is logged, not raised."""
    if not url:
        return False
    if succeeded:
        return push_metrics(url, JOB, SUCCESS, replace=False) and push_metrics(
            url, JOB, RUN, replace=False
        )
    return push_metrics(url, JOB, RUN, replace=False)
