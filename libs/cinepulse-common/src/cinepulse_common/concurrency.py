"""A bound on the requests one process handles at once (OWASP API4): over it, a request is
answered **503** with ``Retry-After`` at once, never queued, and counted.

uvicorn's own ``limit_concurrency`` answers 503 too, but does not fit: it counts open
connections as well as running requests (idle keep-alive connections use the limit up),
refuses ``/healthz``, ``/readyz`` and ``/metrics`` like any other request (a busy pod would
fail its liveness probe and be restarted just when it is busiest, and its metrics would
go dark), sends no ``Retry-After`` and counts nothing. Hence this pure ASGI middleware.

The count is per process (an asyncio event loop: checking and taking a slot is one step,
no lock needed); a request holds its slot until the app returns, body read and answer
included.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

#: the routes of :func:`cinepulse_common.observability.health_router`: never refused, so the
#: probes and Prometheus see a loaded process as it is
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ConcurrencyLimitMiddleware:
    """At most ``limit`` HTTP requests (those to ``exempt`` paths aside) in the app at
    once; one more is answered 503 with ``Retry-After: retry_after_s`` and counted in
    ``refused``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        retry_after_s: int,
        refused: Counter,
        exempt: Collection[str] = PROBE_PATHS,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        self.app = app
        self.limit = limit
        self.refused = refused
        self.exempt = frozenset(exempt)
        self.active = 0
        self._body = json.dumps(
            {"detail": "the server is handling too many requests; retry later"}
        ).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            self.refused.inc()
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
