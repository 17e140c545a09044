"""The explorer's Prometheus metrics and its ``/metrics`` endpoint.

Defined here, in a module imported once per process, not in the page script (Streamlit runs
``app.py`` again on every interaction: a metric defined there would be registered twice).
``/metrics`` is a route of the explorer's own Streamlit server (:mod:`cinepulse_explorer.server`),
on its one port, beside Streamlit's ``/_stcore/health``.

* ``cinepulse_explorer_queries_total{query,outcome}``: each warehouse or recommender call the
  page made (cache misses only: a cached answer runs nothing), ``outcome`` ``ok`` / ``error``.
* ``cinepulse_explorer_query_seconds{query}``: their latency.
* ``cinepulse_build_info{service="explorer"}`` and the process metrics of the default registry.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

F = TypeVar("F", bound=Callable[..., Any])

QUERIES = Counter(
    "cinepulse_explorer_queries_total",
    "Warehouse and recommender calls the explorer's page made (cache misses)",
    ["query", "outcome"],
)
QUERY_SECONDS = Histogram(
    "cinepulse_explorer_query_seconds",
    "Latency of the explorer's warehouse and recommender calls",
    ["query"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def timed(func: F) -> F:
    """Count and time each call of ``func`` under its name (exceptions counted, re-raised)."""
    name = func.__name__

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = func(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            QUERIES.labels(name, outcome).inc()
            QUERY_SECONDS.labels(name).observe(time.perf_counter() - started)

    return wrapper  # type: ignore[return-value]


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the default registry in Prometheus' text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
