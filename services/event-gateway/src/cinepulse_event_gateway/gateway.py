"""What a request to the gateway goes through: the write key (and, for a frontend key, the
user token), the rate limit, the body, the validation, the events' user, and the record for
Kafka (:class:`Gateway`, built once at start-up and kept on ``app.state.gateway``); the life
cycle is described in :mod:`cinepulse_event_gateway.app`."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request
from limits import RateLimitItem
from pydantic import ValidationError

from cinepulse_common.access import (
    WRITE_AUDIENCE,
    UserTokenError,
    UserTokenExpired,
    verify_user_token,
)
from cinepulse_common.apikeys import ApiKeys
from cinepulse_common.events import EVENT_ADAPTER, Event, EventType
from cinepulse_common.ratelimit import CountedLimit, RateLimiter, RateLimitExceeded
from cinepulse_common.rules import TransformRules
from cinepulse_event_gateway import metrics
from cinepulse_event_gateway.body import event_type_label, json_problems
from cinepulse_event_gateway.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
)
from cinepulse_event_gateway.idempotency import (
    InvalidIdempotencyKey,
    content_digest,
    derived_event_id,
    parse_key,
)
from cinepulse_event_gateway.models import FieldError, UserMismatch
from cinepulse_event_gateway.publisher import Publisher, Record
from cinepulse_event_gateway.settings import EventGatewaySettings

JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class Writer:
    """Who sends the events: the client owning the write key, and the user its events must
    be for (``None``: any user, as for a server key or with auth disabled)."""

    client: str
    user: str | None = None


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
        self.token_secret = settings.auth.token_secret()
        self.topics = {t: settings.kafka.topic(rules.topic_for(t)) for t in EventType}
        self._limits: dict[str, RateLimitItem | None] = {}
        self.user_limit = settings.user_limit()
        self.limiter = RateLimiter()

    # --- request checks ---------------------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str]) -> Writer:
        """The writer of a request: its write key's client (401 when the key is missing or
        unknown) and, for a frontend key, the user of its user token (401 when the token is
        missing, invalid or expired; 403 when no token secret is configured). Checked before
        the body is read."""
        if self.keys is None:
            return Writer("anonymous")
        auth = self.settings.auth
        presented = headers.get(auth.header)
        client = self.keys.client_for(presented)
        if client is None:
            missing = not presented
            metrics.AUTH_REFUSALS.labels(
                "missing_write_key" if missing else "invalid_write_key"
            ).inc()
            reason = f"missing {auth.header} header" if missing else f"invalid {auth.header}"
            raise HTTPException(401, reason, headers={"WWW-Authenticate": auth.header})
        if auth.role_of(client) == "server":
            return Writer(client)
        return Writer(client, self._token_user(client, headers.get(auth.user_token_header)))

    def _token_user(self, client: str, token: str | None) -> str:
        """The user of a frontend key's user token (the api's tokens and verifier)."""
        auth = self.settings.auth
        header = auth.user_token_header
        who = f"client {client!r} (a frontend write key)"
        if self.token_secret is None:
            metrics.AUTH_REFUSALS.labels("no_user_token_secret").inc()
            raise HTTPException(
                403,
                # the operator's detail (which settings) is in the warning logged at start
                f"{who} may send no events: this gateway takes no user tokens",
            )
        if not token:
            metrics.AUTH_REFUSALS.labels("missing_user_token").inc()
            raise HTTPException(
                401,
                f"{who} must send {header}, a token for the signed-in user whose events it sends",
                headers={"WWW-Authenticate": header},
            )
        try:
            return verify_user_token(
                self.token_secret, token, auth.user_token_max_ttl_s, audience=WRITE_AUDIENCE
            )
        except UserTokenError as exc:
            expired = isinstance(exc, UserTokenExpired)
            metrics.AUTH_REFUSALS.labels(
                "expired_user_token" if expired else "invalid_user_token"
            ).inc()
            raise HTTPException(
                401, f"invalid {header}: {exc}", headers={"WWW-Authenticate": header}
            ) from None

    def other_user(
        self, writer: Writer, events: Sequence[tuple[int, Event, Any]]
    ) -> UserMismatch | None:
        """``None`` when ``writer`` may send every one of ``events`` ((index, event, the item
        as sent)); else the 403 answer naming the first event for another user than the
        writer's token. The whole request is refused then: nothing of it is published."""
        if writer.user is None:
            return None
        user = writer.user.encode()
        foreign = [
            (i, event, item)
            for i, event, item in events
            if not hmac.compare_digest(event.user_id.encode(), user)
        ]
        if not foreign:
            return None
        metrics.AUTH_REFUSALS.labels("user_mismatch").inc()
        for _, event, _ in events:
            metrics.EVENTS_REJECTED.labels(event.event_type.value, "user_mismatch").inc()
        index, event, item = foreign[0]
        sent_id = isinstance(item, dict) and "event_id" in item
        named = f"event {index}" + (f" (event_id {event.event_id})" if sent_id else "")
        more = f", and {len(foreign) - 1} more," if len(foreign) > 1 else ""
        header = self.settings.auth.user_token_header
        return UserMismatch(
            detail=f"{named}{more} is for another user: its user_id is not the user of the "
            f"{header}; client {writer.client!r} (a frontend write key) may send only that "
            "user's events. Nothing of this request was published",
            index=index,
            event_id=event.event_id if sent_id else None,
        )

    def limit_for(self, client: str) -> RateLimitItem | None:
        if client not in self._limits:  # parsed once per client (settings are validated)
            self._limits[client] = self.settings.limit_for(client)
        return self._limits[client]

    def rate_limit(self, writer: Writer, cost: int) -> dict[str, str]:
        """Count ``cost`` events against the writer's limits: its client's and, for a
        frontend key, its user's (``user_rate_limit``, the identifier holding the client and
        the user, so one user's burst cannot spend a shared key's budget). Every limit is
        tested before any is counted: a request one limit refuses spends nothing of the
        other. Answers the ``X-RateLimit-*`` headers of the limit with less left, or 429 with
        them and ``Retry-After`` (:class:`~cinepulse_common.ratelimit.RateLimiter`); a request
        of more events than a whole limit is 413 (waiting would never let it through)."""
        limits = self._limits_of(writer)
        for limit in limits:
            if cost > limit.item.amount:
                # the settings refuse limits below limits.max_batch_events: a safety net
                metrics.EVENTS_REJECTED.labels("unknown", "exceeds_rate_limit").inc(cost)
                raise HTTPException(
                    413,
                    f"{cost} events in one request exceed {limit.setting} {limit.item} "
                    f"{limit.whose}: send at most {limit.item.amount} events per request",
                    headers=self.limiter.headers(limit),
                )
        try:
            return self.limiter.count(limits, cost)
        except RateLimitExceeded:
            metrics.EVENTS_REJECTED.labels("unknown", "rate_limited").inc(cost)
            raise

    def _limits_of(self, writer: Writer) -> list[CountedLimit]:
        """Each limit the writer is counted against: its user's first (a frontend key with a
        user token), then its client's."""
        client = writer.client
        out: list[CountedLimit] = []
        if self.user_limit is not None and writer.user is not None:
            whose = (
                f"for this user of client {client!r} (each signed-in user of a frontend key has "
                "a limit of their own)"
            )
            out.append(
                CountedLimit(self.user_limit, (client, writer.user), "user_rate_limit", whose)
            )
        limit = self.limit_for(client)
        if limit is not None:
            setting = (
                f"rate_limits[{client!r}]" if client in self.settings.rate_limits else "rate_limit"
            )
            out.append(CountedLimit(limit, (client,), setting, f"for client {client!r}"))
        return out

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


def with_derived_id(
    event: Event, item: Any, client: str, key: str | None, seen: dict[str, int]
) -> Event:
    """``event`` with the id derived from the Idempotency-Key and the item's content when the
    client sent none; ``seen`` counts the digests met so far in the request (identical events
    in one request get one id each)."""
    if key is None or not isinstance(item, dict) or "event_id" in item:
        return event
    digest = content_digest(item)
    occurrence = seen.get(digest, 0)
    seen[digest] = occurrence + 1
    return event.model_copy(update={"event_id": derived_event_id(client, key, digest, occurrence)})


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
