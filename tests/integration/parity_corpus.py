"""The fixed input of the Spark/pandas parity tests: a few thousand Kafka record values
(deterministic: a seeded generator), with

* valid events of every type, in every timestamp form the envelope allows, with decimals
  that round at ties, completion ratios at the ``completed`` boundary, NFC comments, aliases
  of event types and click targets, odd but valid JSON types (a number as a user id or a
  comment: Spark reads its JSON text);
* late events (arrived hours after they happened) and events without ``received_at``;
* duplicates: resends, the same ``event_id`` with other content, of another type (another
  topic), in other letter case, and records without an id sent twice;
* at least one breach of every check in :data:`cinepulse_common.validation.EVENT_CHECKS`,
  several for most, including the corners of Spark's JSON reading (a decimal in a string,
  ``"NaN"`` and ``"Infinity"`` for doubles, a payload that is a string of JSON);
* values that are not JSON objects (``not_object``): the archiver dead-letters them, so only
  Spark sees them (the test checks they are exactly the difference).

Not in it, on purpose (documented limits of the backup, not of the transforms): ``NaN`` or
``Infinity`` as bare JSON tokens (FerretDB refuses to store them; on MongoDB the fallback
quarantines them as not strict JSON, as Spark does), numbers with more than 17 significant
digits (the archiver keeps JSON numbers as doubles), integers beyond 64 bits and duplicate
keys in one object (not storable / not representable in a document).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cinepulse_common import topics
from cinepulse_common.rules import active_rules

TOPIC_OF = {
    "watch": topics.USER_WATCH_LOG,
    "view": topics.USER_WATCH_LOG,
    "rate": topics.USER_RATING_LOG,
    "rating": topics.USER_RATING_LOG,
    "comment": topics.USER_COMMENT_LOG,
    "review": topics.USER_COMMENT_LOG,
    "click": topics.USER_CLICK_LOG,
}
BASE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COMMENTS = [
    "Loved every minute of it, what a joy",
    "This was boring and way too long",
    "The ending scared me half to death",
    "  What a  wonderful,\n joyful film!  ",
    "e\u0301le\u0301gant, tre\u0300s beau \U0001f3ac",  # decomposed accents: NFC shortens it
    "Cafe\u0301 scene \u2014 disgusting \t\t but brilliant",
    "I can't believe they killed him off, so sad \U0001f622",
    "ok",
]
TARGETS = ["poster", "title", "trailer", "play", "details", "thumbnail", "more_like_this", "rec"]


def _stamp(ts: datetime, form: int) -> str:
    """``ts`` in one of the RFC 3339 forms the envelope allows."""
    if form == 0:
        return ts.isoformat()  # +00:00, microseconds when non-zero
    if form == 1:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 2:
        return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    if form == 3:  # nanoseconds: Spark keeps microseconds (truncated)
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z"
    if form == 4:
        return (ts + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.5+05:30")
    if form == 5:
        return (ts - timedelta(hours=18)).strftime("%Y-%m-%dT%H:%M:%S-18:00")
    return ts.strftime("%Y-%m-%d %H:%M:%S+00:00")


def _payload(rng: random.Random, kind: str, i: int) -> dict[str, Any]:
    if kind == "watch":
        duration = rng.choice([5400, 7200.5, 95.25, 3600, 86400, 1.0])
        ratio = rng.choice([0.1, 0.5, 0.9, 0.89995, 0.899949, 1.0, 1.0009, rng.random()])
        position = min(round(duration * ratio, rng.choice([0, 1, 2, 3, 4])), duration + 5)
        if i % 17 == 0:
            position = rng.choice([4861.235, 0.005, 0.015, 1.005, 2.675, 1234.5678])
            duration = 5400
        return {"position_seconds": position, "duration_seconds": duration}
    if kind == "rate":
        rating: Any = rng.choice([0.5, 1, 1.5, 2.0, 2.5, 3, 3.5, 4, 4.5, 5, 5.0])
        if i % 13 == 0:
            rating = rng.choice(["4.5", "+3.5", ".5", "5.", "4.5e0", "3.50"])
        return {"rating": rating}
    if kind == "comment":
        text: Any = rng.choice(COMMENTS)
        if i % 29 == 0:
            text = rng.choice([12.5, 42, True, {"a": [1, 2.0]}, 1e21])
        return {"text": text}
    return {"target": rng.choice(TARGETS)}


def valid_event(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(["watch", "watch", "rate", "comment", "click", "click"])
    occurred = BASE + timedelta(
        minutes=rng.randint(0, 60 * 24 * 20), microseconds=rng.randint(0, 999_999)
    )
    received = occurred + timedelta(seconds=rng.uniform(0, 10))
    if i % 23 == 0:  # late: arrived hours after it happened
        received = occurred + timedelta(hours=rng.uniform(1.01, 48))
    ev: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": kind,
        "user_id": rng.choice([f"user-{rng.randint(0, 199)}", "critic@cine.example", "a.b:c_d"]),
        "movie_id": rng.choice([rng.randint(1, 5000), 1, 2147483647]),
        "occurred_at": _stamp(occurred, rng.randint(0, 6)),
        "received_at": _stamp(received, rng.choice([0, 0, 0, 1, 3])),
        "session_id": f"s-{rng.randint(0, 999)}",
        "payload": _payload(rng, kind, i),
    }
    if i % 31 == 0:
        del ev["received_at"]  # the reference is the processing time (far after 2026-06)
    if i % 37 == 0:
        del ev["session_id"]
    if i % 41 == 0:
        del ev["event_id"]  # derived from the Kafka position
    if i % 43 == 0:
        ev["event_type"] = {"watch": "view", "rate": "rating", "comment": "review"}.get(kind, kind)
    if i % 47 == 0:
        ev["user_id"] = rng.choice([42, 7.5, 1e7])  # Spark reads a number's JSON text
    if i % 53 == 0:
        ev["session_id"] = rng.choice([123, 0.000123, None])
    return ev


def _set(ev: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(ev))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {}) if isinstance(node.get(p), dict | None) else node[p]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return data


def breaches(rng: random.Random) -> list[tuple[str, Any]]:
    """(check it breaks, record) for every check, several ways each."""

    def base(kind: str = "rate") -> dict[str, Any]:
        ev = valid_event(rng, 1)  # i=1: none of the odd variants
        ev["event_type"] = kind
        ev["payload"] = _payload(rng, kind, 1)
        return ev

    w, r, c, k = base("watch"), base("rate"), base("comment"), base("click")
    cases: list[tuple[str, Any]] = [
        ("not_object", b"[1, 2]"),
        ("not_object", b"42"),
        ("not_object", b"{broken"),
        ("not_object", b"null"),
        ("not_object", b'"just a string"'),
        ("missing_event_type", _set(r, "event_type", ...)),
        ("missing_event_type", _set(r, "event_type", None)),
        ("unknown_event_type", _set(r, "event_type", "dance")),
        ("unknown_event_type", _set(r, "event_type", 5)),
        ("unknown_event_type", _set(r, "event_type", 1e7)),
        ("unknown_event_type", _set(r, "event_type", True)),
        ("unknown_event_type", _set(r, "event_type", "WATCH")),
        ("unknown_field", _set(r, "coupon", "FREE")),
        ("unknown_field", _set(r, "Event_Type", "rate")),
        ("unknown_payload_field", _set(r, "payload.text", "hi")),
        ("unknown_payload_field", _set(w, "payload.rating", 4)),
        ("unknown_payload_field", _set(r, "payload", '{"x": 1}')),  # a string of JSON
        ("event_id_not_uuid", _set(r, "event_id", "nope")),
        ("event_id_not_uuid", _set(r, "event_id", 5)),
        ("event_id_not_uuid", _set(r, "event_id", str(uuid.uuid4()) + "\n")),
        ("event_id_not_uuid", _set(r, "event_id", "0b0f2a6e6-a1c-4c1f-9d8e-1a2b3c4d5e6f")),
        ("event_id_not_uuid", _set(r, "event_id", "")),
        ("user_id_missing", _set(r, "user_id", ...)),
        ("user_id_missing", _set(r, "user_id", None)),
        ("user_id_too_long", _set(r, "user_id", "u" * 129)),
        ("user_id_pattern", _set(r, "user_id", "a b")),
        ("user_id_pattern", _set(r, "user_id", "user-1\n")),
        ("user_id_pattern", _set(r, "user_id", "")),
        ("user_id_pattern", _set(r, "user_id", {"id": 1})),
        ("user_id_pattern", _set(r, "user_id", -5)),
        ("session_id_too_long", _set(r, "session_id", "s" * 129)),
        ("session_id_nul", _set(r, "session_id", "s\x001")),
        ("movie_id_missing", _set(r, "movie_id", ...)),
        ("movie_id_missing", _set(r, "movie_id", "603")),
        ("movie_id_missing", _set(r, "movie_id", 603.0)),
        ("movie_id_missing", _set(r, "movie_id", True)),
        ("movie_id_range", _set(r, "movie_id", 0)),
        ("movie_id_range", _set(r, "movie_id", -5)),
        ("movie_id_range", _set(r, "movie_id", 2**31)),
        ("movie_id_range", _set(r, "movie_id", 2**62)),
        ("occurred_at_format", _set(r, "occurred_at", "yesterday")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01T10:00:00")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-02-30T10:00:00Z")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01t10:00:00Z")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01T10:00:00z")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01T24:00:00Z")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01T10:00:00+18:01")),
        ("occurred_at_format", _set(r, "occurred_at", "2026-06-01T10:00:00Z\n")),
        ("occurred_at_format", _set(r, "occurred_at", 1780000000)),
        ("occurred_at_format", _set(r, "occurred_at", ...)),
        ("received_at_format", _set(r, "received_at", "yesterday")),
        ("received_at_format", _set(r, "received_at", "2026-06-01T10:00:00")),
        ("received_at_format", _set(r, "received_at", 1780000000)),
        ("received_at_format", _set(r, "received_at", "2026-13-01T10:00:00Z")),
        (
            "occurred_at_future",
            _set(
                _set(r, "occurred_at", "2026-06-01T11:00:00Z"),
                "received_at",
                "2026-06-01T10:00:00Z",
            ),
        ),
        (
            "occurred_at_future",
            _set(_set(r, "received_at", ...), "occurred_at", "2999-01-01T00:00:00Z"),
        ),
        ("occurred_at_too_old", _set(r, "occurred_at", "1900-01-01T00:00:00Z")),
        ("occurred_at_too_old", _set(r, "occurred_at", "0000-03-01T00:00:00+01:00")),
        ("payload_missing", _set(r, "payload", ...)),
        ("payload_missing", _set(r, "payload", None)),
        ("payload_missing", _set(r, "payload", "x")),
        ("payload_missing", _set(r, "payload", [1])),
        ("watch_fields_required", _set(w, "payload.duration_seconds", ...)),
        ("watch_fields_required", _set(w, "payload.position_seconds", "12")),
        ("watch_fields_required", _set(w, "payload.position_seconds", True)),
        ("watch_fields_required", _set(w, "payload", {})),
        ("position_negative", _set(w, "payload.position_seconds", -5)),
        ("position_negative", _set(w, "payload.position_seconds", "-INF")),
        ("duration_not_positive", _set(w, "payload.duration_seconds", 0)),
        ("duration_not_positive", _set(w, "payload.duration_seconds", -1.5)),
        ("duration_too_long", _set(w, "payload.duration_seconds", 90000)),
        ("duration_too_long", _set(w, "payload.duration_seconds", "Infinity")),
        ("duration_too_long", _set(w, "payload.duration_seconds", "NaN")),
        (
            "position_beyond_duration",
            _set(w, "payload", {"position_seconds": 999, "duration_seconds": 60}),
        ),
        ("position_beyond_duration", _set(w, "payload.position_seconds", "NaN")),
        (
            "position_beyond_duration",
            _set(w, "payload", {"position_seconds": 65.01, "duration_seconds": 60}),
        ),
        ("rating_required", _set(r, "payload", {})),
        ("rating_required", _set(r, "payload.rating", "abc")),
        ("rating_required", _set(r, "payload.rating", True)),
        ("rating_required", _set(r, "payload.rating", 1e50)),
        ("rating_required", _set(r, "payload.rating", " 4.5")),
        ("rating_range", _set(r, "payload.rating", 4.3)),
        ("rating_range", _set(r, "payload.rating", 0)),
        ("rating_range", _set(r, "payload.rating", 5.5)),
        ("rating_range", _set(r, "payload.rating", "4,5")),  # Spark's en-US parser: 45
        ("rating_range", _set(r, "payload.rating", 4.50001)),
        ("rating_range", _set(r, "payload.rating", -0.5)),
        ("text_required", _set(c, "payload", {})),
        ("text_nul", _set(c, "payload.text", "nice\x00 film")),
        ("text_required", _set(c, "payload.text", None)),
        ("text_length", _set(c, "payload.text", "   ")),
        ("text_length", _set(c, "payload.text", "x" * 5001)),
        ("text_length", _set(c, "payload.text", "e\u0301" * 5001)),
        ("target_required", _set(k, "payload", {})),
        ("target_required", _set(k, "payload.target", None)),
        ("target_unknown", _set(k, "payload.target", "buy-now")),
        ("target_unknown", _set(k, "payload.target", 5)),
        ("target_unknown", _set(k, "payload.target", "Poster")),
    ]
    # valid corners next to the breaches (same verdict from both engines: accepted)
    cases += [
        ("", _set(c, "payload.text", "e\u0301" * 2600)),  # 5,200 code points, 2,600 after NFC
        ("", _set(w, "payload", {"position_seconds": 5405, "duration_seconds": 5400})),
        # a day inside the bounded past (time.max_event_age_days before its received_at)
        (
            "",
            _set(
                _set(r, "received_at", _stamp(BASE, 1)),
                "occurred_at",
                _stamp(BASE - timedelta(days=active_rules().time.max_event_age_days - 1), 1),
            ),
        ),
        ("", _set(r, "occurred_at", "2026-06-01T10:00:00-00:00")),
        ("", _set(r, "occurred_at", "2026-06-01T10:00:00.123456789+18:00")),
        ("", _set(r, "event_id", str(uuid.uuid4()).upper())),
    ]
    return cases


def corpus(seed: int = 6, n_valid: int = 2400) -> list[tuple[str, bytes]]:
    """``(key, value)`` Kafka records in production order (duplicates after their first)."""
    rng = random.Random(seed)
    valid = [valid_event(rng, i) for i in range(n_valid)]
    out: list[dict[str, Any] | bytes] = list(valid)
    with_id = [e for e in valid if "event_id" in e]
    # resends: the same record again
    out += rng.sample(with_id, 150)
    # the same event_id with other content (same type)
    for e in rng.sample(with_id, 60):
        other = valid_event(rng, 1)
        other["event_id"], other["event_type"] = e["event_id"], e["event_type"]
        other["user_id"] = e["user_id"]
        other["payload"] = _payload(
            rng,
            {"view": "watch", "rating": "rate", "review": "comment"}.get(
                e["event_type"], e["event_type"]
            ),
            1,
        )
        out.append(other)
    # the same event_id, another type (another topic)
    for e in rng.sample(with_id, 25):
        other = valid_event(rng, 1)
        other["event_id"] = e["event_id"]
        other["event_type"] = "click" if e["event_type"] != "click" else "rate"
        other["payload"] = _payload(rng, other["event_type"], 1)
        out.append(other)
    # the same event_id in capitals (PostgreSQL's uuid ignores case)
    for e in rng.sample(with_id, 12):
        out.append(_set(e, "event_id", e["event_id"].upper()))
    # a record without an id, sent twice: two positions, two derived ids
    out += [e for e in valid if "event_id" not in e][:5]
    # an invalid first copy, then a valid one; and a valid first copy, then an invalid one
    for e in rng.sample(with_id, 8):
        out.insert(out.index(e), _set(e, "movie_id", 0))
    for e in rng.sample(with_id, 8):
        out.append(_set(e, "user_id", "bad user"))
    out += [case for _, case in breaches(rng)]
    records: list[tuple[str, bytes]] = []
    for item in out:
        if isinstance(item, bytes):
            records.append(("x", item))
        else:
            records.append(
                (str(item.get("user_id")), json.dumps(item, ensure_ascii=False).encode())
            )
    return records


def topic_of(value: bytes) -> str:
    """The topic a record goes to: its (legacy) type's, else the click log."""
    try:
        data = json.loads(value)
    except ValueError:
        return topics.USER_CLICK_LOG
    kind = data.get("event_type") if isinstance(data, dict) else None
    return (
        TOPIC_OF.get(kind, topics.USER_CLICK_LOG)
        if isinstance(kind, str)
        else topics.USER_CLICK_LOG
    )
