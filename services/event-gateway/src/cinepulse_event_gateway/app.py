"""The event gateway: frontend events over HTTP into Kafka, answered after Kafka's ack.

Request life cycle (``POST /api/events`` and ``POST /api/events/batch``):

0. at most ``limits.max_concurrent_requests`` requests are handled at once: one more is
   answered 503 with Retry-After at once (:mod:`cinepulse_common.concurrency`; health,
   readiness and metrics are never refused);
1. content type must be JSON (415), the body at most ``limits.max_body_bytes`` (413) and
   received whole within ``limits.body_read_timeout_s`` (408: a slow client holds no
   request slot for long);
2. the write key must match a client (401); the client's rate limit (its own in
   ``rate_limits``, else ``rate_limit``: 100 events/second; counted per pod) must allow the
   number of events (429 with Retry-After); every answer from then on carries
   ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` for that client (none for an
   unlimited client);
3. the body is parsed strictly (:mod:`cinepulse_event_gateway.body`: a key repeated in an
   object is refused, naming it); each event is validated against the envelope models and
   the transform rules (422 with the field and the reason); the server stamps
   ``received_at`` and assigns ``event_id`` when the client sent none: random, or, when the
   request carries an ``Idempotency-Key`` header, derived from the client, the key and the
   event's index (:mod:`cinepulse_event_gateway.idempotency`), so that a resend of the same
   request with the same key repeats the ids (a malformed key: 422 naming the header);
4. the record goes to its topic (``transform_rules.json``: ``event_types.*.topic``) keyed
   by ``user_id``; the answer is 202 only once Kafka acknowledged it (``acks=all``). No
   acknowledgement within ``limits.produce_timeout_s``: 503 with Retry-After, and the
   ``event_id`` to resend with - a repeated ``event_id`` is harmless downstream.

``/readyz`` does not follow Kafka: with Kafka down the pods stay in their Service and answer
503 + Retry-After themselves (a readiness that followed Kafka removed every pod at once, and
clients got connection errors). Kafka's state is the ``cinepulse_gateway_kafka_reachable``
gauge, refreshed by :func:`_watch_kafka`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from pydantic import ValidationError
from starlette.responses import Response

from cinepulse_common.apikeys import ApiKeyError, ApiKeys
from cinepulse_common.concurrency import ConcurrencyLimitMiddleware
from cinepulse_common.events import EVENT_ADAPTER, Event, EventType
from cinepulse_common.logging import get_logger
from cinepulse_common.observability import HttpMetricsMiddleware, add_health_routes
from cinepulse_common.openapi import OpenApiEdit, customise_openapi, docs_routes
from cinepulse_common.rules import TransformRules, active_rules
from cinepulse_event_gateway import metrics, openapi
from cinepulse_event_gateway.body import (
    MalformedJson,
    event_type_label,
    json_problems,
    parse_json,
)
from cinepulse_event_gateway.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
)
from cinepulse_event_gateway.idempotency import (
    InvalidIdempotencyKey,
    derived_event_id,
    parse_key,
)
from cinepulse_event_gateway.models import (
    Accepted,
    BatchItem,
    BatchResult,
    FieldError,
)
from cinepulse_event_gateway.publisher import KafkaPublisher, Publisher, Record
from cinepulse_event_gateway.settings import EventGatewaySettings

log = get_logger(__name__)

JSON_TYPES = ("application/json",)


class Gateway:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self,
        settings: EventGatewaySettings,
        rules: TransformRules,
        publisher: Publisher,
        keys: ApiKeys | None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.publisher = publisher
        self.keys = keys
        self.topics = {t: settings.kafka.topic(rules.topic_for(t)) for t in EventType}
        self._limits: dict[str, RateLimitItem | None] = {}
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    # --- request checks ---------------------------------------------------------------------
    def authenticate(self, presented: str | None) -> str:
        if self.keys is None:
            return "anonymous"
        client = self.keys.client_for(presented)
        if client is None:
            header = self.settings.auth.header
            reason = f"missing {header} header" if not presented else f"invalid {header}"
            raise HTTPException(401, reason, headers={"WWW-Authenticate": header})
        return client

    def limit_for(self, client: str) -> RateLimitItem | None:
        if client not in self._limits:  # parsed once per client (settings are validated)
            self._limits[client] = self.settings.limit_for(client)
        return self._limits[client]

    def rate_limit(self, client: str, cost: int) -> dict[str, str]:
        """Count ``cost`` events against ``client``'s limit: its ``X-RateLimit-*`` headers
        (none for an unlimited client), or 429 with them and ``Retry-After``."""
        limit = self.limit_for(client)
        if limit is None:
            return {}
        allowed = cost <= limit.amount and self.limiter.hit(limit, client, cost=cost)
        stats = self.limiter.get_window_stats(limit, client)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "X-RateLimit-Limit": str(limit.amount),
            "X-RateLimit-Remaining": str(max(0, stats.remaining)),
            "X-RateLimit-Reset": str(reset),
        }
        if allowed:
            return headers
        metrics.EVENTS_REJECTED.labels("unknown", "rate_limited").inc(cost)
        if cost > limit.amount:
            detail = f"{cost} events exceed the rate limit of {limit} for one request"
        else:
            detail = f"rate limit {limit} exceeded for client {client!r}"
        raise HTTPException(429, detail, headers={**headers, "Retry-After": str(reset)})

    async def read_body(self, request: Request) -> bytes:
        ctype = request.headers.get("content-type", "")
        media = ctype.split(";", 1)[0].strip().lower()
        if media not in JSON_TYPES and not media.endswith("+json"):
            raise HTTPException(
                415, f"Content-Type must be application/json (got {ctype or 'none'!r})"
            )
        limit = self.settings.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, "Content-Length is not a number")
            if int(declared) > limit:
                raise HTTPException(413, f"body of {declared} bytes exceeds {limit} bytes")
        body = bytearray()
        timeout = self.settings.limits.body_read_timeout_s
        try:
            async with asyncio.timeout(timeout):  # the whole body, not each chunk
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise HTTPException(413, f"body exceeds {limit} bytes")
        except TimeoutError:
            metrics.BODY_READ_TIMEOUTS.inc()
            raise HTTPException(
                408,
                f"request body not received within {timeout:g} s",
                headers={"Connection": "close"},  # uvicorn then drops the slow connection
            ) from None
        return bytes(body)

    # --- validation -------------------------------------------------------------------------
    def validate(self, data: Any, received_at: datetime) -> Event:
        context = {"rules": self.rules, "received_at": received_at}
        if isinstance(data, bytes):
            event = EVENT_ADAPTER.validate_json(data, context=context)
        else:
            event = EVENT_ADAPTER.validate_python(data, context=context)
        return event.model_copy(update={"received_at": received_at})

    def accept(self, data: Any, received_at: datetime) -> Event | list[FieldError]:
        """One parsed event (:func:`parse_json`), or the errors that refuse it (counted):
        a repeated key or a lone surrogate refuses it before the models see it."""
        errors = json_problems(data)
        event_type = event_type_label(data)
        if not errors:
            try:
                return self.validate(data, received_at)
            except ValidationError as exc:
                event_type, errors = field_errors(exc)
        metrics.EVENTS_REJECTED.labels(event_type, _error_type(errors)).inc()
        return errors

    def record(self, event: Event) -> Record:
        return Record(
            topic=self.topics[event.event_type],
            key=event.kafka_key(),
            # the model's own serializer: no union dispatch as with EVENT_ADAPTER.dump_json
            value=event.__pydantic_serializer__.to_json(event),
        )


#: fields checked by cross-field rules (events.py model validators)
_CROSS_FIELD_NAMES = frozenset({"occurred_at", "position_seconds", "duration_seconds"})


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, checked (422 naming the header otherwise)."""
    try:
        return parse_key(request.headers.get(IDEMPOTENCY_HEADER))
    except InvalidIdempotencyKey as exc:
        raise HTTPException(422, [exc.error.model_dump()]) from None


def with_derived_id(event: Event, item: Any, client: str, key: str | None, index: int) -> Event:
    """``event`` with the id derived from the Idempotency-Key when the client sent none."""
    if key is None or not isinstance(item, dict) or "event_id" in item:
        return event
    return event.model_copy(update={"event_id": derived_event_id(client, key, index)})


def field_errors(exc: ValidationError) -> tuple[str, list[FieldError]]:
    """(event type or 'unknown', errors naming the field and the reason)."""
    event_type = "unknown"
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        kind = err["type"]
        if loc and loc[0] in EventType._value2member_map_:
            event_type = str(loc.pop(0))
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field = "event_type"
            reason = (
                f"missing event_type; one of {', '.join(EventType)}"
                if kind == "union_tag_not_found"
                else f"unknown event_type; one of {', '.join(EventType)}"
            )
        elif kind in ("json_invalid", "json_type"):
            field, reason = "body", f"malformed JSON: {err['msg']}"
        else:
            reason = err["msg"].removeprefix("Value error, ")
            # a cross-field rule (model validator) has no field in its location: its
            # message starts with the field it is about ("occurred_at is more than ...")
            first = reason.split(" ", 1)[0]
            if kind == "value_error" and first in _CROSS_FIELD_NAMES:
                loc.append(first)
            field = ".".join(str(p) for p in loc) or "body"
        out.append(FieldError(field=field, reason=reason, type=kind))
    return event_type, out


def _error_type(errors: list[FieldError]) -> str:
    return errors[0].type if errors else "invalid"


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
    state: dict[str, Gateway] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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
        state["gw"] = Gateway(settings, rules, pub, keys)
        watcher = asyncio.create_task(_watch_kafka(pub), name="kafka-watch")
        log.info(
            "event gateway ready",
            topics=sorted(state["gw"].topics.values()),
            clients=len(keys.clients) if keys else 0,
            rate_limit=settings.rate_limit,
            rate_limits=settings.rate_limits,
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
    # the key is read straight from the headers (no dependency injection on the hot path);
    # the OpenAPI declares it as an apiKey security scheme
    header = settings.auth.header

    def unavailable(detail: Any, counted: dict[str, str]) -> JSONResponse:
        return JSONResponse(
            detail,
            status_code=503,
            headers={**counted, "Retry-After": str(settings.limits.retry_after_s)},
        )

    @app.post(
        "/api/events",
        status_code=202,
        summary="Send one event",
        response_model=Accepted,
        responses=openapi.SINGLE_RESPONSES,
        openapi_extra=openapi.single_body(),
        tags=["events"],
    )
    async def post_event(request: Request) -> Response:
        gw = state["gw"]
        client = gw.authenticate(request.headers.get(header))
        key = idempotency_key(request)
        body = await gw.read_body(request)
        counted = gw.rate_limit(client, 1)
        try:
            data = parse_json(body)
        except MalformedJson as exc:
            metrics.EVENTS_REJECTED.labels("unknown", exc.error.type).inc()
            return JSONResponse(
                {"detail": [exc.error.model_dump()]}, status_code=422, headers=counted
            )
        event = gw.accept(data, datetime.now(UTC))
        if isinstance(event, list):
            return JSONResponse(
                {"detail": [e.model_dump() for e in event]}, status_code=422, headers=counted
            )
        event = with_derived_id(event, data, client, key, 0)
        [err] = await gw.publisher.publish_many(
            [gw.record(event)], settings.limits.produce_timeout_s
        )
        if err is not None:
            metrics.EVENTS_REJECTED.labels(event.event_type.value, "kafka_unavailable").inc()
            log.warning(
                "event not acknowledged by Kafka", event_id=str(event.event_id), reason=err.reason
            )
            return unavailable(
                {
                    "detail": f"Kafka did not acknowledge the event: {err.reason}; "
                    "retry with the same event_id",
                    "event_id": str(event.event_id),
                },
                counted,
            )
        metrics.accepted(event.event_type)
        return Response(
            Accepted(event_id=event.event_id).model_dump_json(),
            status_code=202,
            media_type="application/json",
            headers=counted,
        )

    @app.post(
        "/api/events/batch",
        status_code=202,
        summary="Send a batch of events (a JSON array)",
        response_model=BatchResult,
        responses=openapi.batch_responses(settings.limits.max_batch_events),
        openapi_extra=openapi.batch_body(settings.limits.max_batch_events),
        tags=["events"],
    )
    async def post_batch(request: Request) -> Response:
        gw = state["gw"]
        client = gw.authenticate(request.headers.get(header))
        key = idempotency_key(request)
        body = await gw.read_body(request)
        try:
            items = parse_json(body)
        except MalformedJson as exc:
            raise HTTPException(422, [exc.error.model_dump()]) from None
        if not isinstance(items, list):
            raise HTTPException(
                422,
                [
                    {
                        "field": "body",
                        "reason": "expected a JSON array of events",
                        "type": "list_type",
                    }
                ],
            )
        limit = settings.limits.max_batch_events
        if len(items) > limit:
            raise HTTPException(413, f"batch of {len(items)} events exceeds {limit} events")
        if not items:
            raise HTTPException(
                422, [{"field": "body", "reason": "the batch is empty", "type": "too_short"}]
            )
        counted = gw.rate_limit(client, len(items))

        now = datetime.now(UTC)
        results: list[BatchItem] = []
        valid: list[tuple[int, Event]] = []
        for i, item in enumerate(items):
            event = gw.accept(item, now)
            if isinstance(event, list):
                results.append(BatchItem(index=i, status="rejected", errors=event))
                continue
            event = with_derived_id(event, item, client, key, i)
            valid.append((i, event))
            results.append(BatchItem(index=i, status="accepted", event_id=event.event_id))

        outcome = await gw.publisher.publish_many(
            [gw.record(e) for _, e in valid], settings.limits.produce_timeout_s
        )
        not_acked = 0
        for (i, event), err in zip(valid, outcome, strict=True):
            if err is None:
                metrics.accepted(event.event_type)
                continue
            not_acked += 1
            metrics.EVENTS_REJECTED.labels(event.event_type.value, "kafka_unavailable").inc()
            results[i] = BatchItem(
                index=i, status="unavailable", event_id=event.event_id, reason=err.reason
            )
        summary = BatchResult.summarise(results)
        payload = summary.model_dump_json(exclude_none=True)
        if not_acked:
            log.warning("batch partly unacknowledged by Kafka", unavailable=not_acked)
            return Response(
                payload,
                status_code=503,
                media_type="application/json",
                headers={**counted, "Retry-After": str(settings.limits.retry_after_s)},
            )
        status = 422 if summary.accepted == 0 else 202
        return Response(payload, status_code=status, media_type="application/json", headers=counted)

    # Readiness does not follow Kafka: a Kafka outage must not take every gateway pod out of
    # its Service at once (clients would get connection errors); the app answers 503 with
    # Retry-After itself. Kafka's state is in cinepulse_gateway_kafka_reachable.
    add_health_routes(app, {"gateway": lambda: _check_started(state)})
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
            allow_headers=[settings.auth.header, "Content-Type", IDEMPOTENCY_HEADER],
            # a browser's script may read its limit and when to retry
            expose_headers=[*openapi.RATE_LIMIT_HEADERS, "Retry-After"],
            max_age=600,
        )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics.HTTP)

    edits: list[OpenApiEdit] = [openapi.add_event_schemas, openapi.add_rate_limit_headers]
    if settings.auth.enabled:
        edits.append(lambda spec: openapi.add_write_key_scheme(spec, header))
    customise_openapi(app, *edits)
    return app


def _check_started(state: dict[str, Gateway]) -> None:
    """Readiness: the app has started (its publisher exists) and can answer requests."""
    if state.get("gw") is None:
        raise RuntimeError("not started")


#: how often the gateway asks Kafka for its metadata (cinepulse_gateway_kafka_reachable)
KAFKA_WATCH_INTERVAL_S = 10.0
KAFKA_WATCH_TIMEOUT_S = 5.0


async def _watch_kafka(publisher: Publisher, interval_s: float | None = None) -> None:
    """Report Kafka's reachability and the producer queue as metrics, never as readiness.

    A metadata request every ``interval_s`` (off the event loop); a failure is logged once
    when the state changes, not on every probe."""
    interval = KAFKA_WATCH_INTERVAL_S if interval_s is None else interval_s
    reachable: bool | None = None
    while True:
        try:
            # the publisher's check bounds its own metadata request (2 s by default)
            await asyncio.wait_for(asyncio.to_thread(publisher.check), KAFKA_WATCH_TIMEOUT_S)
            now = True
            why = ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means unreachable; the gateway keeps serving
            now = False
            why = f"{type(exc).__name__}: {exc}"
        metrics.KAFKA_REACHABLE.set(1 if now else 0)
        with contextlib.suppress(Exception):  # a metric must never stop the watch
            metrics.PRODUCER_QUEUE.set(publisher.queue_length())
        if now != reachable:
            if now:
                log.info("Kafka reachable")
            else:
                log.warning("Kafka unreachable; events are answered 503", error=why)
            reachable = now
        await asyncio.sleep(interval)
