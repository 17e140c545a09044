"""Prometheus metrics of the api (names start ``cinepulse_api_``); created once per process
so that building several apps (tests) does not register them twice.

* ``cinepulse_api_http_requests_total{route,method,status}``, ``..._http_request_duration_seconds
  {route,method}`` (latency by route template), ``..._http_requests_in_flight``;
* ``cinepulse_api_http_errors_total{route,status}``: answers of 400 and above by route;
* ``cinepulse_api_db_query_duration_seconds{query}``: each query's execution and fetch, by
  query name (:mod:`cinepulse_api.adapters.queries`); ``..._db_pool_wait_seconds``: the wait
  for a pooled connection; ``..._db_errors_total{query,error}``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

from cinepulse_common.observability import HttpMetrics

_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ApiHttpMetrics(HttpMetrics):
    """The shared HTTP metrics plus a counter of error answers by route and status."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.errors = Counter(
            f"{prefix}_http_errors_total",
            "Answers with a status of 400 or above, by route template and status",
            ["route", "status"],
        )
        self._error_children: dict[tuple[str, int], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        super().observe(route, method, status, seconds)
        if status >= 400:
            key = (route, status)
            child = self._error_children.get(key)
            if child is None:
                child = self._error_children[key] = self.errors.labels(route, str(status))
            child.inc()


HTTP = ApiHttpMetrics("cinepulse_api")

DB_QUERY_SECONDS = Histogram(
    "cinepulse_api_db_query_duration_seconds",
    "Time to execute a query and fetch its rows, by query name",
    ["query"],
    buckets=_DB_BUCKETS,
)
DB_POOL_WAIT_SECONDS = Histogram(
    "cinepulse_api_db_pool_wait_seconds",
    "Time waiting for a connection from the pool",
    buckets=_DB_BUCKETS,
)
DB_ERRORS = Counter(
    "cinepulse_api_db_errors_total",
    "Queries that failed, by query name and error class",
    ["query", "error"],
)
