"""What the two transform engines (Spark, pandas) share to validate and identify events the
same way: the checks in their order with the quarantine reason of each, the envelope's field
lists, the identifier patterns, and the id derived for a record that came without one.

Each engine implements every check of :data:`EVENT_CHECKS` as its own predicate (a Spark
``Column``, a pandas ``Series``); the first check a record breaks decides its quarantine
reason. The order, the wording and the short rule code come from here only, so the two
engines cannot drift apart (the parity test holds them to identical quarantines).

Patterns are matched against the *whole* value in both engines: Spark anchors them with
``(?![\\s\\S])`` because Java's ``$`` also matches before a final line terminator (a
``"<uuid>\\n"`` would otherwise pass and then fail the PostgreSQL load); pandas uses
``re.fullmatch`` with ``re.ASCII`` (Java's ``\\d`` is ASCII only).
"""

from __future__ import annotations

import re
import uuid

from cinepulse_common.events import (
    ClickPayload,
    CommentPayload,
    RatePayload,
    WatchEvent,
    WatchPayload,
)
from cinepulse_common.rules import TransformRules

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: RFC 3339 with an explicit offset (the envelope requires an aware timestamp)
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"

#: where a record was read: its Kafka position (the MongoDB backup keeps the same fields)
SOURCE_COLUMNS = ("topic", "partition", "offset")
#: field names of the envelope models (their schema, not business rules)
ENVELOPE_FIELDS: tuple[str, ...] = tuple(WatchEvent.model_fields)
SESSION_ID_MAX: int = next(
    m.max_length for m in WatchEvent.model_fields["session_id"].metadata if hasattr(m, "max_length")
)
PAYLOAD_FIELDS: dict[str, tuple[str, ...]] = {
    "watch": tuple(WatchPayload.model_fields),
    "rate": tuple(RatePayload.model_fields),
    "comment": tuple(CommentPayload.model_fields),
    "click": tuple(ClickPayload.model_fields),
}

#: namespace of the ids derived for records that came without one
SOURCE_NAMESPACE = uuid.UUID("6f0c1e7a-63c9-5b35-9a47-3c2f8f6a2d10")


def source_event_id(topic: str, partition: int, offset: int) -> str:
    """The ``event_id`` of a record that came without one: UUID v5 of its Kafka position, so
    a replay (from Kafka or from the MongoDB backup) derives the same id."""
    return str(uuid.uuid5(SOURCE_NAMESPACE, f"{topic}:{partition}:{offset}"))


#: every check, in the order they are applied (the envelope models' order): the first one a
#: record breaks is its quarantine reason
EVENT_CHECKS: tuple[str, ...] = (
    "not_object",
    "missing_event_type",
    "unknown_event_type",
    "unknown_field",
    "unknown_payload_field",
    "event_id_not_uuid",
    "user_id_missing",
    "user_id_too_long",
    "user_id_pattern",
    "session_id_too_long",
    "session_id_nul",
    "movie_id_missing",
    "movie_id_range",
    "occurred_at_format",
    "received_at_format",
    "occurred_at_future",
    "occurred_at_too_old",
    "payload_missing",
    "watch_fields_required",
    "position_negative",
    "duration_not_positive",
    "duration_too_long",
    "position_beyond_duration",
    "rating_required",
    "rating_range",
    "text_required",
    "text_nul",
    "text_length",
    "target_required",
    "target_unknown",
)
#: PostgreSQL's text and jsonb cannot hold U+0000: a text carrying it is refused up front
#: (a load that failed on it would fail again on every replay)
NUL = "\x00"
#: checks whose reason is followed by the value of a column (as the engine read it)
REASON_WITH_VALUE: dict[str, str] = {"unknown_event_type": "event_type"}


def event_reasons(rules: TransformRules) -> dict[str, str]:
    """The quarantine reason of each check (for :data:`REASON_WITH_VALUE`, the text that
    precedes the value). A reason starts with the field or the check it is about."""
    ids, t, r, w, c = rules.identifiers, rules.time, rules.rating, rules.watch, rules.comment
    types = ", ".join(str(e) for e in rules.event_types)
    reasons = {
        "not_object": "not a JSON object",
        "missing_event_type": f"missing event_type; one of {types}",
        "unknown_event_type": "unknown event_type ",
        "unknown_field": "unknown field in the envelope",
        "unknown_payload_field": "unknown field in the payload",
        "event_id_not_uuid": "event_id: not a UUID",
        "user_id_missing": "user_id: missing",
        "user_id_too_long": f"user_id is longer than {ids.user_id_max_length} characters",
        "user_id_pattern": f"user_id must match {ids.user_id_pattern}",
        "session_id_too_long": f"session_id is longer than {SESSION_ID_MAX} characters",
        "session_id_nul": "session_id: contains a NUL character (U+0000)",
        "movie_id_missing": "movie_id: missing",
        "movie_id_range": f"movie_id must be {ids.movie_id_min} to {ids.movie_id_max}",
        "occurred_at_format": "occurred_at: not an RFC 3339 timestamp with an offset",
        "received_at_format": "received_at: not an RFC 3339 timestamp with an offset",
        "occurred_at_future": f"occurred_at is more than {t.max_future_skew_seconds}s in the future",
        "occurred_at_too_old": f"occurred_at is more than {t.max_event_age_days} days old",
        "payload_missing": "payload: missing",
        "watch_fields_required": "payload: position_seconds and duration_seconds required",
        "position_negative": "payload.position_seconds: must be >= 0",
        "duration_not_positive": "payload.duration_seconds: must be > 0",
        "duration_too_long": f"duration_seconds exceeds {w.max_duration_seconds}",
        "position_beyond_duration": "position_seconds is beyond duration_seconds (+tolerance)",
        "rating_required": "payload.rating: required",
        "rating_range": f"rating must be {r.min} to {r.max} in steps of {r.step}",
        "text_required": "payload.text: required",
        "text_nul": "payload.text: contains a NUL character (U+0000)",
        "text_length": (
            f"text must be {c.min_length} to {c.max_length} characters after normalisation"
        ),
        "target_required": "payload.target: required",
        "target_unknown": "unknown click target",
    }
    return reasons


#: the rule of a record whose ``event_id`` is already registered (staged, by any engine,
#: as any event type) with other content (``dedup.compare`` of the rules): it is not a
#: resend, and a second fact under that id would double count, so it is quarantined. Applied
#: by the load step (:mod:`cinepulse_common.warehouse.registry`), the same for every engine
EVENT_ID_CONFLICT = "event_id_conflict"
#: its reason, followed by the fields that differ and what the registry holds
EVENT_ID_CONFLICT_REASON = (
    f"{EVENT_ID_CONFLICT}: the event_id is already registered with other content; differs in "
)

#: the short, stable code of a reason: its first word (the field or the check)
RULE_CODE_PATTERN = r"^([A-Za-z_.]+)"
_RULE_CODE = re.compile(RULE_CODE_PATTERN)


def rule_code(reason: str) -> str:
    match = _RULE_CODE.match(reason)
    return match.group(1) if match else ""
