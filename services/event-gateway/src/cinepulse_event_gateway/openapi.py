"""OpenAPI pieces: the event schemas (from the envelope models), examples, responses."""

from __future__ import annotations

from typing import Any

from cinepulse_common.events import EVENT_ADAPTER
from cinepulse_event_gateway.models import (
    BatchResult,
    Problem,
    Unavailable,
    UserMismatch,
    ValidationFailed,
)

DESCRIPTION = """\
Takes user events from the frontend and publishes them to Kafka (`user_watch_log`,
`user_rating_log`, `user_comment_log`, `user_click_log`, keyed by `user_id`).

* **202** means Kafka has acknowledged the event (`acks=all`): it will not be lost.
* **503** (with `Retry-After`) means it was *not* acknowledged in time: resend it with the
  same `event_id` (returned in the answer). A repeated `event_id` is harmless: everything
  downstream dedupes on it.
* `received_at` is stamped by the gateway; a value sent by the client is replaced.
* Ranges and sets (rating steps, click targets, text length, clock skew, the oldest
  `occurred_at`: 400 days) come from `transform_rules.json`, the same rules Spark and the
  pandas fallback apply.
* Validation is strict (422 names the field and the reason): numbers are JSON numbers, not
  strings or booleans; the nil UUID is no `event_id`; no control or bidirectional control
  character in `user_id`, `session_id` or a click target, none in a comment but tab and
  line feed; no key twice in a JSON object.
* **Events bound to users**: a write key is `frontend` (a browser's or an app's key: public
  in effect) unless configured as `server` (a backend relaying its users' events). A
  frontend key must also send `X-User-Token`, a signed user token for writing (a JWT, HS256
  with the api's secret, claims `sub` = the user id, `exp`, `aud` = `cinepulse-events`: a
  token for reads, `aud` = `cinepulse-api`, is refused), and may send only that user's
  events: **401** without a valid token (missing, forged, expired: the detail says which),
  **403** when an event's `user_id` is not the token's `sub`, naming the first such event
  (`index`, `event_id`, `field`); the whole request is refused then, nothing of it is
  published. A server key may send any user's events.
* **Rate limit**: each write key may send a number of events per window (default 1000 per
  10 seconds, never less than a full batch; a batch counts each event), and each signed-in
  user of a frontend key a number of their own (default 500 per 10 seconds, never less than
  a full batch either), counted by each gateway pod on its own, so with N pods a key may
  reach N times the limit. Every answer after the key is checked carries
  `X-RateLimit-Limit` (events per window), `X-RateLimit-Remaining` and `X-RateLimit-Reset`
  (seconds until the window frees up) of whichever limit has less left; over a limit the
  answer is **429** with `Retry-After`, naming the limit (a request refused by one limit is
  counted against neither). A request holding more events than a whole limit is **413** (no
  `Retry-After`: waiting would not help). A server key configured as unlimited gets no
  `X-RateLimit-*` headers.
"""

EXAMPLES: dict[str, dict[str, Any]] = {
    "watch": {
        "summary": "watch progress",
        "value": {
            "event_id": "6f1c2b4e-3a51-4d2a-9a61-6c0f3f1b2a11",
            "event_type": "watch",
            "user_id": "u-1042",
            "movie_id": 603,
            "occurred_at": "2026-11-26T18:04:05Z",
            "session_id": "s-77",
            "payload": {"position_seconds": 1830.5, "duration_seconds": 8160},
        },
    },
    "rate": {
        "summary": "a rating",
        "value": {
            "event_type": "rate",
            "user_id": "u-1042",
            "movie_id": 603,
            "occurred_at": "2026-11-26T18:10:00+01:00",
            "payload": {"rating": 4.5},
        },
    },
    "comment": {
        "summary": "a comment (any Unicode)",
        "value": {
            "event_type": "comment",
            "user_id": "u-7",
            "movie_id": 27205,
            "occurred_at": "2026-11-26T18:12:00Z",
            "payload": {"text": "Loved the ending \u2014 wow \U0001f3ac"},
        },
    },
    "click": {
        "summary": "a click",
        "value": {
            "event_type": "click",
            "user_id": "u-7",
            "movie_id": 27205,
            "occurred_at": "2026-11-26T18:12:30Z",
            "payload": {"target": "trailer"},
        },
    },
}


def _int_header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer", "minimum": 0}}


#: the rate limit's answer headers (absent for a server key configured as unlimited)
RATE_LIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "X-RateLimit-Limit": _int_header(
        "events this write key (for a frontend key's user, whichever of the key's and the "
        "user's limits has less left) may send per window, on this gateway pod (each pod "
        "counts on its own: N pods allow N times this)"
    ),
    "X-RateLimit-Remaining": _int_header("events left in the current window on this pod"),
    "X-RateLimit-Reset": _int_header("seconds until the window frees up"),
}
RETRY_AFTER_HEADER: dict[str, Any] = _int_header("seconds to wait before retrying")

_COMMON: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "missing or invalid write key; for a frontend key, a missing, invalid "
        "or expired user token (the detail says which)",
    },
    403: {
        "model": UserMismatch | Problem,
        "description": "a frontend key sent an event for another user than its user token's "
        "(the first such event named; nothing of the request published), or no user token "
        "secret is configured",
    },
    413: {
        "model": Problem,
        "description": "body (or batch) too large, or more events than the write key's "
        "(or its user's) whole rate limit",
    },
    415: {"model": Problem, "description": "Content-Type is not application/json"},
    429: {
        "model": Problem,
        "description": "the write key's rate limit, or its user's, is exhausted (the detail "
        "names the limit); retry after `Retry-After` seconds",
        "headers": {**RATE_LIMIT_HEADERS, "Retry-After": RETRY_AFTER_HEADER},
    },
}


def add_rate_limit_headers(schema: dict[str, Any]) -> None:
    """Declare the ``X-RateLimit-*`` headers on the event routes' 202, 403, 422 and 503."""
    for path, ops in schema.get("paths", {}).items():
        if not path.startswith("/api/events"):
            continue
        for op in ops.values():
            for status, response in op.get("responses", {}).items():
                if status in ("202", "403", "422", "503"):
                    headers = response.setdefault("headers", {})
                    for name, header in RATE_LIMIT_HEADERS.items():
                        headers.setdefault(name, header)
                    if status == "503":
                        headers.setdefault("Retry-After", RETRY_AFTER_HEADER)


SINGLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_COMMON,
    400: {"model": Problem, "description": "malformed request headers"},
    422: {"model": ValidationFailed, "description": "invalid event: the field and the reason"},
    503: {"model": Unavailable, "description": "Kafka did not acknowledge in time; retry"},
}


def batch_responses(max_events: int) -> dict[int | str, dict[str, Any]]:
    return {
        **_COMMON,
        400: {"model": Problem, "description": "malformed request headers"},
        422: {
            "model": BatchResult | ValidationFailed,
            "description": "the body is not an array of events, or every event was rejected",
        },
        503: {
            "model": BatchResult,
            "description": "some valid events were not acknowledged by Kafka: resend those "
            "marked `unavailable` with their event_id",
        },
    }


#: the optional ``Idempotency-Key`` request header (cinepulse_event_gateway.idempotency)
IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a resend safe for events sent without `event_id`: their ids are "
    "derived from the write key's client, this key and the SHA-256 of the event's content "
    "(UUIDv5), so resending the same events with the same key, all of them or only those "
    "not acknowledged, gives them the same ids and the copies are deduplicated downstream; "
    "other content never gets the id of an earlier event. Without it such events get a random id and a resent "
    "request (e.g. after a 503) stores them twice. Use one new key per distinct request, "
    "e.g. a UUID. 1 to 128 characters of `A-Z a-z 0-9 - _ . : + / =`.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": "^[A-Za-z0-9_.:+/=-]+$",
    },
    "example": "4f1c2a9e-batch-0001",
}


def single_body() -> dict[str, Any]:
    return {
        "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Event"},
                    "examples": EXAMPLES,
                }
            },
        },
    }


def batch_body(max_events: int) -> dict[str, Any]:
    return {
        "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {
            "required": True,
            "description": f"1 to {max_events} events; each is accepted or rejected on its own",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Event"},
                        "minItems": 1,
                        "maxItems": max_events,
                    },
                    "example": [EXAMPLES["rate"]["value"], EXAMPLES["click"]["value"]],
                }
            },
        },
    }


def add_event_schemas(schema: dict[str, Any]) -> None:
    """Put the envelope's JSON Schema (one per event type) under components/schemas."""
    event = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    defs = event.pop("$defs", {})
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs)
    components["Event"] = event
    for name in ("WatchEvent", "RateEvent", "CommentEvent", "ClickEvent"):
        received = components.get(name, {}).get("properties", {}).get("received_at")
        if received is not None:
            received["description"] = "stamped by the gateway; a client's value is replaced"
            received["readOnly"] = True


def add_write_key_scheme(schema: dict[str, Any], header: str, token_header: str) -> None:
    """Declare the write key and the user token headers as apiKey schemes on the event
    routes: a frontend key needs both, a server key only itself."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["WriteKey"] = {
        "type": "apiKey",
        "in": "header",
        "name": header,
        "description": "the client's write key (a per-client secret, from a mounted Secret); "
        "a frontend key needs a user token too, a server key sends any user's events",
    }
    schemes["UserToken"] = {
        "type": "apiKey",
        "in": "header",
        "name": token_header,
        "description": "a frontend key's user token for writing: a JWT signed with HS256 (the "
        "secret shared with the frontend's backend, the api's) with the claims sub (the user "
        "id), exp and aud = cinepulse-events (a read token, aud = cinepulse-api, is refused); "
        "the request's events must all be for that user",
    }
    for path, ops in schema.get("paths", {}).items():
        if path.startswith("/api/events"):
            for op in ops.values():
                op["security"] = [{"WriteKey": [], "UserToken": []}, {"WriteKey": []}]
