"""The archiver's web views, registered on faust's web server by :func:`register_views`
(called by :func:`cinepulse_archiver.app.create_app`, after the agents).

``/healthz``, ``/readyz``, ``/metrics`` (unless ``metrics_port`` serves it on a port of its
own), ``/counters/events_per_minute?minutes=``, ``/counters/trending?minutes=&limit=``.

The counter views read the count agent's windowed tables
(:mod:`cinepulse_archiver.agents`): the stored entries of the windows they ask for. With
several archiver replicas each holds the counts of its own partitions: the counter views say
which partitions they cover. faust's own views are off
(:data:`cinepulse_archiver.app.FAUST_WEB_VIEWS_OFF`).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from faust.web import Request, Response, View
from prometheus_client import generate_latest

from cinepulse_archiver.counters import window_counts, window_starts
from cinepulse_archiver.parts import Parts
from cinepulse_common.observability import readiness_answer


def int_param(request: Request, name: str, default: int, hi: int) -> int:
    """The query parameter ``name``: an integer from 1 to ``hi``, ``default`` when absent
    (ValueError otherwise: the views answer 422)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= hi:
        raise ValueError(f"{name} must be an integer from 1 to {hi}")
    return int(raw)


def minute_start(ts: float) -> str:
    """The start of the minute of ``ts``, ISO 8601 in UTC."""
    return datetime.fromtimestamp(ts - ts % 60, UTC).isoformat()


def register_views(parts: Parts) -> None:
    """The pages, on ``parts.app``'s web server (faust registers each as it is decorated)."""
    app, settings, sink = parts.app, parts.settings, parts.sink
    source_names = parts.source_names
    per_minute, per_movie = parts.per_minute, parts.per_movie

    def _partitions() -> list[int]:
        return sorted(
            {tp.partition for tp in app.consumer.assignment() if tp.topic in source_names}
        )

    @app.page("/healthz")
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: View, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await sink.ping()
            checks["mongo"] = "ok"
        except Exception as exc:  # readiness reports any failure as not ready
            checks["mongo"] = f"error: {type(exc).__name__}: {exc}"
        try:  # before the consumer has started, assignment() raises (ConsumerNotStarted)
            assigned = bool(app.consumer.assignment())
            checks["kafka"] = "ok" if assigned else "error: no partition assigned"
        except Exception as exc:  # readiness reports any failure as not ready
            checks["kafka"] = f"error: {type(exc).__name__}: {exc}"
        # {"status": ..., "checks": {"mongo": "ok" | "down", ...}}; why is logged, not answered
        body, status = readiness_answer(checks)
        return self.json(body, status=status)

    if not settings.metrics_port:  # else /metrics is on its own port only (__main__)

        @app.page("/metrics")
        async def prometheus(self: View, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; exposition format 0.0.4 is UTF-8
            return self.bytes(generate_latest(), content_type="text/plain; version=0.0.4")

    @app.page("/counters/events_per_minute")
    async def events_per_minute(self: View, request: Request) -> Response:
        try:
            minutes = int_param(request, "minutes", 15, settings.counter_minutes)
        except ValueError as exc:
            return self.json({"detail": str(exc)}, status=422)
        table = per_minute.table
        by_window = window_counts(table.data.items(), window_starts(table, time.time(), minutes))
        # every event type counted in these minutes, 0 in a minute without it
        names = sorted(set().union(*by_window.values()))
        series = [
            {"minute": minute_start(start), "counts": {name: counts[name] for name in names}}
            for start, counts in by_window.items()
        ]
        return self.json({"minutes": series, "partitions": _partitions()})

    @app.page("/counters/trending")
    async def trending(self: View, request: Request) -> Response:
        try:
            minutes = int_param(
                request, "minutes", settings.trending_minutes, max(settings.trending_minutes, 60)
            )
            limit = int_param(request, "limit", 10, 1000)
        except ValueError as exc:
            return self.json({"detail": str(exc)}, status=422)
        table = per_movie.table
        totals: Counter[int] = Counter()
        for counts in window_counts(
            table.data.items(), window_starts(table, time.time(), minutes)
        ).values():
            for movie, n in counts.items():
                totals[int(movie)] += n
        top = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return self.json(
            {
                "minutes": minutes,
                "movies": [{"movie_id": m, "events": n} for m, n in top],
                "partitions": _partitions(),
            }
        )
