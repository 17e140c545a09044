"""The event gateway: frontend events over HTTP into Kafka, answered after Kafka's ack.

Request life cycle (``POST /api/events`` and ``POST /api/events/batch``):

0. at most ``limits.max_concurrent_requests`` requests are handled at once: one more is
   answered 503 with Retry-After at once (:mod:`cinepulse_common.concurrency`; health,
   readiness and metrics are never refused);
1. content type must be JSON (415), the body at most ``limits.max_body_bytes`` (413) and
   received whole within ``limits.body_read_timeout_s`` (408: a slow client holds no
   request slot for long);
2. the write key must match a client (401); a ``frontend`` key (every key but those
   ``auth.write_roles`` marks ``server``) must also carry a valid ``X-User-Token``, a user
   token for writing (``aud`` = ``cinepulse-events``, signed with the api's secret; 401
   naming what is wrong with it; 403 when no token secret is configured); that user's rate
   limit (``user_rate_limit``) and the client's (its own in
   ``rate_limits``, else ``rate_limit``: 1000 events per 10 seconds; counted per pod) must
   allow the number of events (429 with Retry-After; a request holding more events than the
   whole limit: 413, as waiting would never help); every answer from then on carries
   ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` for that client (none for an
   unlimited client);
3. the body is parsed strictly (:mod:`cinepulse_event_gateway.body`: a key repeated in an
   object is refused, naming it); each event is validated against the envelope models and
   the transform rules (422 with the field and the reason); the server stamps
   ``received_at`` and assigns ``event_id`` when the client sent none: random, or, when the
   request carries an ``Idempotency-Key`` header, derived from the client, the key and the
   SHA-256 of the event's content (:mod:`cinepulse_event_gateway.idempotency`), so that a
   resend of the same events with the same key repeats their ids, whole or in part, and
   other content never collides (a malformed key: 422 naming the header); a frontend key's
   valid events must all be for its token's user (``user_id`` = the token's ``sub``), else
   the whole request is refused, 403 naming the first other user's event (index,
   ``event_id``, field), and nothing of it is published;
4. the record goes to its topic (``transform_rules.json``: ``event_types.*.topic``) keyed
   by ``user_id``; the answer is 202 only once Kafka acknowledged it (``acks=all``). No
   acknowledgement within ``limits.produce_timeout_s``: 503 with Retry-After, and the
   ``event_id`` to resend with - a repeated ``event_id`` is harmless downstream.

``/readyz`` does not follow Kafka: with Kafka down the pods stay in their Service and answer
503 + Retry-After themselves (a readiness that followed Kafka removed every pod at once, and
clients got connection errors). Kafka's state is the ``cinepulse_gateway_kafka_reachable``
gauge, refreshed by :func:`cinepulse_event_gateway.kafka_watch.watch_kafka`.

The parts: :mod:`~cinepulse_event_gateway.gateway` (the checks a request goes through),
:mod:`~cinepulse_event_gateway.routes` (the operations), :mod:`~cinepulse_event_gateway.deps`
(what a route needs); :func:`create_app` builds what they share and composes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import State

from cinepulse_common.apikeys import ApiKeyError, ApiKeys
from cinepulse_common.concurrency import ConcurrencyLimitMiddleware
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.openapi import OpenApiEdit, customise_openapi, docs_routes
from cinepulse_common.rules import TransformRules, active_rules
from cinepulse_event_gateway import metrics, openapi
from cinepulse_event_gateway.gateway import Gateway
from cinepulse_event_gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from cinepulse_event_gateway.kafka_watch import watch_kafka
from cinepulse_event_gateway.publisher import KafkaPublisher, Publisher
from cinepulse_event_gateway.routes import events
from cinepulse_event_gateway.settings import EventGatewaySettings

log = get_logger(__name__)


def create_app(
    settings: EventGatewaySettings,
    *,
    publisher: Publisher | None = None,
    rules: TransformRules | None = None,
) -> FastAPI:
    rules = rules or active_rules()
    keys = None
    if settings.auth.enabled:
        try:
            keys = ApiKeys.from_settings(settings.auth, kind="write key")
        except ApiKeyError as exc:
            raise SystemExit(f"event-gateway: cannot load write keys: {exc}") from None
        if not keys.clients:
            raise SystemExit(
                "event-gateway: auth is enabled but no write key is configured; set "
                "CINEPULSE_AUTH__KEYS_PATH (a mounted Secret) or CINEPULSE_AUTH__KEYS, "
                "or CINEPULSE_AUTH__ENABLED=false for local development"
            )
        _check_roles(settings, keys.clients)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: KafkaPublisher | None = None
        pub: Publisher
        if publisher is None:
            pub = owned = KafkaPublisher(
                settings.kafka,
                queue_size=settings.limits.max_in_flight_messages,
                ack_timeout_s=settings.limits.produce_timeout_s,
            )
        else:
            pub = publisher
        gateway = app.state.gateway = Gateway(settings, rules, pub, keys)
        watcher = asyncio.create_task(watch_kafka(pub), name="kafka-watch")
        log.info(
            "event gateway ready",
            topics=sorted(gateway.topics.values()),
            clients=len(keys.clients) if keys else 0,
            rate_limit=settings.rate_limit,
            rate_limits=settings.rate_limits,
            server_keys=sorted(c for c, r in settings.auth.write_roles.items() if r == "server"),
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            if owned is not None:  # flush what is queued before the process ends
                owned.close()

    app = FastAPI(
        title="Cinepulse event gateway",
        version="1",
        summary="Frontend user events (watch, rate, comment, click) into Kafka.",
        description=openapi.DESCRIPTION,
        lifespan=lifespan,
        **docs_routes(settings),
    )
    app.include_router(events.router(settings.limits.max_batch_events))

    # Readiness does not follow Kafka: a Kafka outage must not take every gateway pod out of
    # its Service at once (clients would get connection errors); the app answers 503 with
    # Retry-After itself. Kafka's state is in cinepulse_gateway_kafka_reachable.
    add_health_routes(
        app, {"gateway": lambda: _check_started(app.state)}, metrics=not settings.metrics_port
    )
    # inside CORS (a refused browser request can still be read) and the HTTP metrics
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        limit=settings.limits.max_concurrent_requests,
        retry_after_s=settings.limits.retry_after_s,
        refused=metrics.CONCURRENCY_LIMITED,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=[
                settings.auth.header,
                settings.auth.user_token_header,
                "Content-Type",
                IDEMPOTENCY_HEADER,
            ],
            # a browser's script may read its limit and when to retry
            expose_headers=[*openapi.RATE_LIMIT_HEADERS, "Retry-After"],
            max_age=600,
        )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics.HTTP)

    edits: list[OpenApiEdit] = [openapi.add_event_schemas, openapi.add_rate_limit_headers]
    if settings.auth.enabled:
        auth = settings.auth
        edits.append(
            lambda spec: openapi.add_write_key_scheme(spec, auth.header, auth.user_token_header)
        )
    customise_openapi(app, *edits)
    return app


def _check_roles(settings: EventGatewaySettings, clients: list[str]) -> None:
    """Warn at start about roles that change nothing, and about frontend keys that can send
    nothing (no user token secret: every one of their requests is refused)."""
    auth = settings.auth
    unknown = sorted(set(auth.write_roles) - set(clients))
    if unknown:
        log.warning("roles given for clients without a write key", clients=unknown)
    frontend = [c for c in clients if auth.role_of(c) == "frontend"]
    if frontend and auth.user_token_secret is None:
        log.warning(
            "frontend write keys without a user token secret: their requests are refused "
            "(403); set CINEPULSE_AUTH__USER_TOKEN_SECRET (the api's), or mark a backend "
            "relaying events as server in CINEPULSE_AUTH__WRITE_ROLES",
            clients=frontend,
        )


def _check_started(state: State) -> None:
    """Readiness: the app has started (its publisher exists) and can answer requests."""
    if getattr(state, "gateway", None) is None:
        raise RuntimeError("not started")
