"""From a Kafka record to the MongoDB document that backs it up (pure functions).

A document keeps the record exactly as received (the parsed JSON object, under
``record``) plus where it came from: ``topic``, ``partition``, ``offset``, the record's
Kafka ``key`` and ``timestamp``, and ``received_at`` (when the archiver read it). Its
``_id`` is ``<topic>:<partition>:<offset>``, so a redelivered record maps to the same
document and writing it again changes nothing.

A few envelope fields are copied to the top level for indexes and the fallback's window
queries (``event_id``, ``event_type``, ``occurred_at``, ``user_id``, ``movie_id``); they
are ``None`` when the record lacks them (it is still stored: Spark and the fallback
quarantine invalid envelopes, and replays need the raw record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
from bson.errors import InvalidDocument

USER_LOGS = "user_logs"
MOVIES = "movies"
#: every :class:`Unusable` code (the dead letter's ``code``, the metric's label)
DEAD_LETTER_CODES = ("empty", "not_utf8", "not_json", "not_object", "not_storable", "mongo_refused")


class Unusable(ValueError):
    """The record cannot be stored as a document (reason in ``str(exc)``)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None

    @property
    def doc_id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def parse_value(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise Unusable("record has no value (tombstone)", "empty")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable(
            f"value is not UTF-8 ({exc.reason} at byte {exc.start})", "not_utf8"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unusable(
            f"value is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", "not_json"
        ) from None
    if not isinstance(data, dict):
        raise Unusable(f"value is JSON {type(data).__name__}, not an object", "not_object")
    return data


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts.astimezone(UTC) if ts.tzinfo else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def to_document(
    source: Source, value: bytes | None, received_at: datetime, *, movie_topic: bool
) -> tuple[str, dict[str, Any]]:
    """``(collection, document)`` for one record; raises :class:`Unusable`."""
    record = parse_value(value)
    doc: dict[str, Any] = {
        "_id": source.doc_id,
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "key": source.key.decode("utf-8", "replace") if source.key is not None else None,
        "timestamp": (
            datetime.fromtimestamp(source.timestamp_ms / 1000, UTC)
            if source.timestamp_ms is not None
            else None
        ),
        "received_at": received_at,
        "record": record,
    }
    if movie_topic:
        collection = MOVIES
        doc["source"] = "kafka"
        doc["movie_id"] = _int(record.get("id", record.get("movie_id")))
    else:
        collection = USER_LOGS
        doc["event_id"] = _str(record.get("event_id"))
        doc["event_type"] = _str(record.get("event_type"))
        doc["occurred_at"] = _timestamp(record.get("occurred_at"))
        doc["user_id"] = _str(record.get("user_id"))
        doc["movie_id"] = _int(record.get("movie_id"))
    try:  # what BSON cannot hold (integers beyond 64 bits, ...) would fail the whole batch
        bson.encode(doc)
    except (InvalidDocument, OverflowError, UnicodeEncodeError, ValueError) as exc:
        # e.g. a lone surrogate ("\ud800") is valid JSON but not encodable UTF-8
        raise Unusable(f"cannot be stored as a MongoDB document: {exc}", "not_storable") from None
    return collection, doc


def dead_letter(source: Source, value: bytes | None, reason: str, code: str) -> bytes:
    """The dead-letter record: why, where from, and the original bytes (as text if UTF-8)."""
    body: dict[str, Any] = {
        "reason": reason,
        "code": code,
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "consumer": "archiver",
    }
    if value is not None:
        try:
            body["value"] = value.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            body["value_base64"] = base64.b64encode(value).decode("ascii")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def counter_keys(record: dict[str, Any]) -> tuple[str | None, int | None]:
    """(event_type, movie_id) for the live counters, when the record has them."""
    return _str(record.get("event_type")), _int(record.get("movie_id"))
