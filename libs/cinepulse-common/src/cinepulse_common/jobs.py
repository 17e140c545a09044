"""What every batch job (a container command Airflow runs) shares: ISO 8601 instants as
command-line arguments, and pushing the run's metrics to the Prometheus Pushgateway."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, push_to_gateway, pushadd_to_gateway

from cinepulse_common.logging import get_logger

log = get_logger(__name__)


def instant(text: str) -> datetime:
    """An ISO 8601 date or time as an aware datetime; one without an offset is UTC.
    Raises :class:`argparse.ArgumentTypeError` (argparse's own message) when unparseable."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-26T08:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def push_metrics(
    url: str,
    job: str,
    registry: CollectorRegistry,
    grouping_key: Mapping[str, str] | None = None,
    *,
    replace: bool = True,
) -> bool:
    """Push ``registry`` to the Pushgateway; a failure is logged, never raised (the job's
    summary line is printed either way). Returns whether it was pushed. ``replace``: the
    group's metrics become exactly these (PUT); else only the metrics of these names are
    replaced and the group's others kept (POST), e.g. a failed run's outcome beside the last
    success's."""
    send = push_to_gateway if replace else pushadd_to_gateway
    try:
        send(url, job=job, grouping_key=dict(grouping_key or {}), registry=registry)
    except OSError as exc:
        log.warning("metrics not pushed", pushgateway=url, job=job, error=str(exc))
        return False
    return True
