"""The ``Idempotency-Key`` request header: deterministic ids for events sent without one.

An event sent without ``event_id`` gets one from the gateway. A random one would make a
resent request (after a 503, or a connection lost before the answer) store the events of the
first attempt that did land a second time. With an ``Idempotency-Key`` the id is a UUIDv5 of
the write key's client, the key and the SHA-256 of the event's content (:func:`content_digest`:
its canonical JSON as received). The same event sent again with the same key gets the same id,
which every sink deduplicates, wherever it sits in the resent request (a resend of only the
events that were not acknowledged keeps each one's id). Different content under the same key
gets a different id: a reused key never makes the warehouse's first-wins upsert drop an event
answered 202. The client is part of the name, so two clients that happen to choose the same key
get different ids. Identical events within one request are told apart by their occurrence
(the first copy is 0, the next 1, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from cinepulse_event_gateway.models import FieldError

HEADER = "Idempotency-Key"
MAX_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9_.:+/=-]+")
#: the namespace of the derived ids (a fixed uuid5 of the project's URL namespace)
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cinepulse/event-gateway/idempotency-key")
#: fields the server sets itself: what a client sends in them never tells two events apart
SERVER_FIELDS = frozenset({"event_id", "received_at"})


class InvalidIdempotencyKey(ValueError):
    def __init__(self, reason: str, type_: str) -> None:
        super().__init__(reason)
        self.error = FieldError(field=f"header.{HEADER}", reason=reason, type=type_)


def parse_key(raw: str | None) -> str | None:
    """The header's value, checked; None when absent. Raises :class:`InvalidIdempotencyKey`."""
    if raw is None:
        return None
    if not raw:
        raise InvalidIdempotencyKey(f"{HEADER} must not be empty", "string_too_short")
    if len(raw) > MAX_LENGTH:
        raise InvalidIdempotencyKey(
            f"{HEADER} must be at most {MAX_LENGTH} characters (got {len(raw)})",
            "string_too_long",
        )
    if not _ALLOWED.fullmatch(raw):
        raise InvalidIdempotencyKey(
            f"{HEADER} may only hold the characters A-Z a-z 0-9 - _ . : + / =",
            "string_pattern_mismatch",
        )
    return raw


def content_digest(item: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``item``'s canonical JSON: sorted keys, compact separators, UTF-8,
    without the fields the server sets (:data:`SERVER_FIELDS`)."""
    content = {k: v for k, v in item.items() if k not in SERVER_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def derived_event_id(client: str, key: str, digest: str, occurrence: int = 0) -> uuid.UUID:
    """The id of the event with content ``digest`` (:func:`content_digest`) sent by ``client``
    with ``key``; ``occurrence`` counts earlier identical events in the same request."""
    return uuid.uuid5(NAMESPACE, f"{len(client)}:{client}\x00{key}\x00{digest}\x00{occurrence}")
