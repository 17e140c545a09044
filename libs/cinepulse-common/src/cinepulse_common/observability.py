"""Metrics and health: the ``/metrics``, ``/healthz``, ``/readyz`` pattern every service uses.

* ``/healthz`` - the process is alive (no dependency checks: a restart would not help them).
* ``/readyz``  - every registered readiness check passes (Kafka reachable, database answers);
  503 with the failing checks named otherwise, so a load balancer stops routing to it. The
  answer says only ``"ok"`` or ``"down"`` per check: why a check failed (exception text,
  host names, a driver's message) goes to the log, never to the caller.
* ``/metrics`` - Prometheus exposition of the default registry.

FastAPI apps call :func:`add_health_routes`; processes without an HTTP server (batch jobs,
consumers) call :func:`start_metrics_server`. A service given a ``metrics_port`` (the chart
always gives one) serves ``/metrics`` there only, from :func:`start_metrics_server`, and not on
its public port (``add_health_routes(..., metrics=False)``): the NetworkPolicy can then admit
Prometheus to the metrics port alone, and callers of the public port read no metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cinepulse_common.logging import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[Any] | Any]

BUILD_INFO = Info("cinepulse_build", "Build and service identity")
STARTED_AT = Gauge("cinepulse_process_start_time_seconds", "Unix time the service started")


def record_build_info(service: str, version: str) -> None:
    BUILD_INFO.info({"service": service, "version": version})
    STARTED_AT.set(time.time())


async def run_checks(checks: Mapping[str, ReadinessCheck], timeout_s: float) -> dict[str, str]:
    """Run each check with a deadline; return ``{name: "ok" | "error: ..."}`` (the error
    text is for the log: :func:`readiness_answer` keeps it from the caller)."""

    async def one(check: ReadinessCheck) -> str:
        try:
            if inspect.iscoroutinefunction(check):
                await asyncio.wait_for(check(), timeout_s)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(check), timeout_s)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, timeout_s)
        except TimeoutError:
            return f"error: no answer within {timeout_s:g}s"
        except Exception as exc:  # a readiness check reports every failure as not-ready
            return f"error: {type(exc).__name__}: {exc}"
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


def readiness_answer(results: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """The body and status of a readiness probe from ``{check: "ok" | <why it failed>}``:
    ``{"status": "ok" | "unavailable", "checks": {check: "ok" | "down"}}``, 200 or 503.

    Why a check failed is logged (a warning per failing check), not answered: exception
    text names hosts, ports, drivers and configuration, and the probe answers anyone who
    can reach the port."""
    failed = {name: why for name, why in results.items() if why != "ok"}
    for name, why in failed.items():
        log.warning("readiness check failed", check=name, error=why)
    body = {
        "status": "unavailable" if failed else "ok",
        "checks": {name: "down" if name in failed else "ok" for name in results},
    }
    return body, 503 if failed else 200


def health_router(
    checks: Mapping[str, ReadinessCheck] | None = None,
    timeout_s: float = 2.0,
    metrics: bool = True,
) -> APIRouter:
    """``/healthz``, ``/readyz`` and, when ``metrics``, ``/metrics`` (off when the service
    serves its metrics on a port of their own)."""
    router = APIRouter(tags=["health"])
    registered = dict(checks or {})

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: every dependency answers")
    async def readyz() -> JSONResponse:
        body, status = readiness_answer(await run_checks(registered, timeout_s))
        return JSONResponse(body, status_code=status)

    if metrics:

        @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
        async def prometheus() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def add_health_routes(
    app: FastAPI,
    checks: Mapping[str, ReadinessCheck] | None = None,
    timeout_s: float = 2.0,
    metrics: bool = True,
) -> None:
    app.include_router(health_router(checks, timeout_s, metrics))


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - in-pod
    """Expose /metrics from a background thread (for jobs and consumers)."""
    start_http_server(port, addr=addr)


class HttpMetrics:
    """Per-service HTTP metrics: requests by route and status, latency, in-flight requests.

    ``prefix`` names the service (``cinepulse_gateway``); the route label is the route
    *template* (``/api/movies/{movie_id}``), never the raw path, so cardinality stays bounded.
    """

    def __init__(self, prefix: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            f"{prefix}_http_requests_total",
            "HTTP requests answered, by route, method and status code",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "Time from request start to the end of the response, by route",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{prefix}_http_requests_in_flight",
            "Requests being handled right now",
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:  # label lookups take a lock: cache the children (hot path)
            pair = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        pair[0].inc()
        pair[1].observe(seconds)


class HttpMetricsMiddleware:
    """Pure ASGI middleware (no per-request task, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                template, scope.get("method", "GET"), status, time.perf_counter() - start
            )
