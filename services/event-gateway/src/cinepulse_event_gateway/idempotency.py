"""The ``Idempotency-Key`` request header: deterministic ids for events sent without one.

An event sent without ``event_id`` gets one from the gateway. A random one would make a
resent request (after a 503, or a connection lost before the answer) store the events of the
first attempt that did land a second time. With an ``Idempotency-Key`` the id is a UUIDv5 of
the write key's client, the key and the event's index in the request: the same request sent
again with the same key gets the same ids, which every sink deduplicates. The client is part
of the name, so two clients that happen to choose the same key get different ids.
"""

from __future__ import annotations

import re
import uuid

from cinepulse_event_gateway.models import FieldError

HEADER = "Idempotency-Key"
MAX_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9_.:+/=-]+")
#: the namespace of the derived ids (a fixed uuid5 of the project's URL namespace)
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cinepulse/event-gateway/idempotency-key")


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


def derived_event_id(client: str, key: str, index: int) -> uuid.UUID:
    """The id of the ``index``-th event of a request sent with ``key`` by ``client``."""
    return uuid.uuid5(NAMESPACE, f"{len(client)}:{client}\x00{key}\x00{index}")
