"""``POST /api/events`` and ``POST /api/events/batch``: answered once Kafka acknowledged.

The write key (and a frontend key's user token) is read straight from the headers (no
dependency for it on the hot path); the OpenAPI declares them as apiKey security schemes.
A frontend key's events must all be for its token's user: one that is not refuses the whole
request (403 naming it) before anything is published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from cinepulse_common.events import Event
from cinepulse_common.logging import get_logger
from cinepulse_event_gateway import metrics, openapi
from cinepulse_event_gateway.body import MalformedJson, parse_json
from cinepulse_event_gateway.deps import GatewayDep
from cinepulse_event_gateway.gateway import Gateway, idempotency_key, with_derived_id
from cinepulse_event_gateway.models import Accepted, BatchItem, BatchResult, UserMismatch

log = get_logger(__name__)


def _forbidden(refused: UserMismatch, counted: dict[str, str]) -> JSONResponse:
    return JSONResponse(refused.model_dump(mode="json"), status_code=403, headers=counted)


def _unavailable(gw: Gateway, detail: Any, counted: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        detail,
        status_code=503,
        headers={**counted, "Retry-After": str(gw.settings.limits.retry_after_s)},
    )


async def post_event(request: Request, gw: GatewayDep) -> Response:
    settings = gw.settings
    writer = gw.authenticate(request.headers)
    client = writer.client
    key = idempotency_key(request)
    body = await gw.read_body(request)
    counted = gw.rate_limit(writer, 1)
    try:
        data = parse_json(body)
    except MalformedJson as exc:
        metrics.EVENTS_REJECTED.labels("unknown", exc.error.type).inc()
        return JSONResponse({"detail": [exc.error.model_dump()]}, status_code=422, headers=counted)
    event = gw.accept(data, datetime.now(UTC))
    if isinstance(event, list):
        return JSONResponse(
            {"detail": [e.model_dump() for e in event]}, status_code=422, headers=counted
        )
    event = with_derived_id(event, data, client, key, {})
    if (refused := gw.other_user(writer, [(0, event, data)])) is not None:
        return _forbidden(refused, counted)
    [err] = await gw.publisher.publish_many([gw.record(event)], settings.limits.produce_timeout_s)
    if err is not None:
        metrics.EVENTS_REJECTED.labels(event.event_type.value, "kafka_unavailable").inc()
        log.warning(
            "event not acknowledged by Kafka", event_id=str(event.event_id), reason=err.reason
        )
        return _unavailable(
            gw,
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


async def post_batch(request: Request, gw: GatewayDep) -> Response:
    settings = gw.settings
    writer = gw.authenticate(request.headers)
    client = writer.client
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
    counted = gw.rate_limit(writer, len(items))

    now = datetime.now(UTC)
    results: list[BatchItem] = []
    valid: list[tuple[int, Event]] = []
    seen: dict[str, int] = {}  # content digests, for the Idempotency-Key's ids
    for i, item in enumerate(items):
        event = gw.accept(item, now)
        if isinstance(event, list):
            results.append(BatchItem(index=i, status="rejected", errors=event))
            continue
        event = with_derived_id(event, item, client, key, seen)
        valid.append((i, event))
        results.append(BatchItem(index=i, status="accepted", event_id=event.event_id))
    # all or nothing: one valid event for another user refuses every event of the request
    if (refused := gw.other_user(writer, [(i, e, items[i]) for i, e in valid])) is not None:
        return _forbidden(refused, counted)

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


def router(max_batch_events: int) -> APIRouter:
    """The two operations; the batch's documented limit is the configured one."""
    r = APIRouter(tags=["events"])
    r.add_api_route(
        "/api/events",
        post_event,
        methods=["POST"],
        status_code=202,
        summary="Send one event",
        response_model=Accepted,
        responses=openapi.SINGLE_RESPONSES,
        openapi_extra=openapi.single_body(),
    )
    r.add_api_route(
        "/api/events/batch",
        post_batch,
        methods=["POST"],
        status_code=202,
        summary="Send a batch of events (a JSON array)",
        response_model=BatchResult,
        responses=openapi.batch_responses(max_batch_events),
        openapi_extra=openapi.batch_body(max_batch_events),
    )
    return r
