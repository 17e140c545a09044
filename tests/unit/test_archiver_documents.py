"""From a Kafka record to the MongoDB document (archiver), and the dead-letter record."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bson
import pytest

from cinepulse_archiver.documents import (
    DEAD_LETTER_CODES,
    MOVIES,
    USER_LOGS,
    Source,
    Unusable,
    counter_keys,
    dead_letter,
    parse_value,
    to_document,
)
from tests.factories import event

RECEIVED = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
TS_MS = 1_764_180_245_123  # 2025-11-26T18:04:05.123Z


def source(topic: str = "user_rating_log", **kw: Any) -> Source:
    values: dict[str, Any] = {
        "topic": topic,
        "partition": 3,
        "offset": 1042,
        "key": b"user-42",
        "timestamp_ms": TS_MS,
    }
    values.update(kw)
    return Source(**values)


def encode(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


# --- user events ------------------------------------------------------------------------------
def test_a_user_event_becomes_a_user_logs_document() -> None:
    data = event("comment", payload={"text": "Ça alors — 🎬 שלום e\u0301"})
    data["occurred_at"] = "2026-11-26T19:04:05.5+01:00"
    data["received_at"] = "2026-11-26T18:04:06Z"
    value = encode(data)
    collection, doc = to_document(source(), value, RECEIVED, movie_topic=False)

    assert collection == USER_LOGS == "user_logs"
    assert doc["_id"] == "user_rating_log:3:1042"
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("user_rating_log", 3, 1042)
    assert doc["record"] == json.loads(value)  # kept exactly
    assert doc["key"] == "user-42"
    assert doc["timestamp"] == datetime(2025, 11, 26, 18, 4, 5, 123000, tzinfo=UTC)
    assert doc["received_at"] is RECEIVED
    assert doc["event_id"] == data["event_id"]
    assert doc["event_type"] == "comment"
    assert doc["user_id"] == "user-42"
    assert doc["movie_id"] == 603
    occurred = doc["occurred_at"]
    assert occurred == datetime(2026, 11, 26, 18, 4, 5, 500000, tzinfo=UTC)
    assert occurred.utcoffset() == timedelta(0)
    assert occurred.tzinfo is UTC
    assert "source" not in doc
    bson.encode(doc)  # storable


def test_the_record_is_not_normalised() -> None:
    # fields the envelope would refuse or rewrite are kept as they came
    data = {
        "event_type": "rating",
        "user_id": "u 1",
        "movie_id": 603,
        "payload": {"rating": 4.3, "extra": [1, {"a": None}]},
        "unknown": True,
    }
    _, doc = to_document(source(), encode(data), RECEIVED, movie_topic=False)
    assert doc["record"] == data
    assert doc["event_type"] == "rating"


def test_occurred_at_with_z_suffix_is_utc() -> None:
    _, doc = to_document(
        source(), encode(event(occurred_at="2026-01-02T03:04:05Z")), RECEIVED, movie_topic=False
    )
    assert doc["occurred_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "occurred_at", ["2026-01-02T03:04:05", "yesterday", 1_764_180_245, None, ""]
)
def test_an_unusable_occurred_at_is_none(occurred_at: Any) -> None:
    _, doc = to_document(
        source(), encode(event(occurred_at=occurred_at)), RECEIVED, movie_topic=False
    )
    assert doc["occurred_at"] is None
    assert doc["record"]["occurred_at"] == occurred_at


def test_no_key_and_no_timestamp() -> None:
    _, doc = to_document(
        source(key=None, timestamp_ms=None), encode(event()), RECEIVED, movie_topic=False
    )
    assert doc["key"] is None
    assert doc["timestamp"] is None


def test_a_non_utf8_key_is_decoded_with_replacement() -> None:
    _, doc = to_document(source(key=b"u-\xff"), encode(event()), RECEIVED, movie_topic=False)
    assert doc["key"] == "u-\ufffd"


def test_an_object_without_envelope_fields_is_still_stored() -> None:
    collection, doc = to_document(source(), b'{"hello": "world"}', RECEIVED, movie_topic=False)
    assert collection == USER_LOGS
    assert doc["record"] == {"hello": "world"}
    for field in ("event_id", "event_type", "occurred_at", "user_id", "movie_id"):
        assert field in doc and doc[field] is None, field


def test_envelope_fields_of_the_wrong_type_are_none() -> None:
    data = {"event_id": 7, "event_type": ["rate"], "user_id": 42, "movie_id": "603"}
    _, doc = to_document(source(), encode(data), RECEIVED, movie_topic=False)
    assert (doc["event_id"], doc["event_type"], doc["user_id"], doc["movie_id"]) == (
        None,
        None,
        None,
        None,
    )
    assert doc["record"] == data


@pytest.mark.parametrize("movie_id", [True, 603.0, None])
def test_movie_id_must_be_an_integer(movie_id: Any) -> None:
    _, doc = to_document(source(), encode(event(movie_id=movie_id)), RECEIVED, movie_topic=False)
    assert doc["movie_id"] is None


def test_the_same_record_maps_to_the_same_document() -> None:
    value = encode(event())
    a = to_document(source(), value, RECEIVED, movie_topic=False)
    b = to_document(source(), value, RECEIVED + timedelta(hours=1), movie_topic=False)
    assert a[1]["_id"] == b[1]["_id"]
    assert to_document(source(offset=1043), value, RECEIVED, movie_topic=False)[1]["_id"] == (
        "user_rating_log:3:1043"
    )


# --- movies -----------------------------------------------------------------------------------
def test_a_movie_record_becomes_a_movies_document() -> None:
    movie = {"id": 603, "title": "The Matrix", "genres": ["Action", "Science Fiction"]}
    collection, doc = to_document(
        source("movie", key=b"603"), encode(movie), RECEIVED, movie_topic=True
    )
    assert collection == MOVIES == "movies"
    assert doc["_id"] == "movie:3:1042"
    assert doc["movie_id"] == 603
    assert doc["source"] == "kafka"
    assert doc["record"] == movie
    assert doc["key"] == "603"
    for field in ("event_id", "event_type", "occurred_at", "user_id"):
        assert field not in doc


def test_a_movie_record_with_movie_id_instead_of_id() -> None:
    _, doc = to_document(source("movie"), b'{"movie_id": 27205}', RECEIVED, movie_topic=True)
    assert doc["movie_id"] == 27205


def test_a_movie_record_without_an_id_is_stored() -> None:
    _, doc = to_document(source("movie"), b'{"title": "?"}', RECEIVED, movie_topic=True)
    assert doc["movie_id"] is None


# --- unusable records -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "code", "text"),
    [
        (None, "empty", "tombstone"),
        (b"\xff\xfe{}", "not_utf8", "not UTF-8"),
        (b'{"text": "caf\xe9"}', "not_utf8", "at byte 13"),
        (b"", "not_json", "not JSON"),
        (b"{not json", "not_json", "line 1 column 2"),
        (b'{"a": 1', "not_json", "not JSON"),
        (b"[1, 2]", "not_object", "JSON list"),
        (b"42", "not_object", "JSON int"),
        (b"4.5", "not_object", "JSON float"),
        (b'"text"', "not_object", "JSON str"),
        (b"null", "not_object", "JSON NoneType"),
        (b"true", "not_object", "JSON bool"),
    ],
)
@pytest.mark.parametrize("movie_topic", [False, True])
def test_unusable_values(value: bytes | None, code: str, text: str, movie_topic: bool) -> None:
    with pytest.raises(Unusable) as info:
        to_document(source(), value, RECEIVED, movie_topic=movie_topic)
    assert info.value.code == code
    assert code in DEAD_LETTER_CODES  # the metric's label values, created at 0
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        b'{"payload": {"n": 123456789012345678901234567890}}',
        b'{"movie_id": 18446744073709551616}',  # 2**64
        b'{"n": -9223372036854775809}',  # one below int64
    ],
)
def test_an_integer_beyond_64_bits_is_not_storable(value: bytes) -> None:
    with pytest.raises(Unusable) as info:
        to_document(source(), value, RECEIVED, movie_topic=False)
    assert info.value.code == "not_storable"
    assert "MongoDB" in str(info.value)


def test_64_bit_integers_are_storable() -> None:
    value = b'{"a": 9223372036854775807, "b": -9223372036854775808}'
    _, doc = to_document(source(), value, RECEIVED, movie_topic=False)
    assert doc["record"] == {"a": 2**63 - 1, "b": -(2**63)}


def test_a_nul_byte_in_a_key_is_not_storable() -> None:
    with pytest.raises(Unusable) as info:
        to_document(source(), b'{"a\\u0000b": 1}', RECEIVED, movie_topic=False)
    assert info.value.code == "not_storable"


def test_a_lone_surrogate_is_not_storable() -> None:
    with pytest.raises(Unusable) as info:
        to_document(source(), b'{"text": "\\ud800"}', RECEIVED, movie_topic=False)
    assert info.value.code == "not_storable"


def test_parse_value_returns_the_object() -> None:
    assert parse_value(b'{"a": [1, 2.5, "\xc3\xa9"]}') == {"a": [1, 2.5, "é"]}


# --- dead letters -----------------------------------------------------------------------------
def test_a_dead_letter_carries_the_reason_the_source_and_the_text() -> None:
    value = '{"text": "Ça — 🎬", broken'.encode()
    before = datetime.now(UTC)
    out = dead_letter(source(), value, "value is not JSON (...)", "not_json")
    body = json.loads(out)
    assert body["reason"] == "value is not JSON (...)"
    assert body["code"] == "not_json"
    assert body["source_topic"] == "user_rating_log"
    assert body["source_partition"] == 3
    assert body["source_offset"] == 1042
    assert body["consumer"] == "archiver"
    assert body["value"] == value.decode("utf-8")
    assert "value_base64" not in body
    stamped = datetime.fromisoformat(body["dead_lettered_at"])
    assert stamped.tzinfo is not None
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)
    # non-ASCII text is written as UTF-8, not \\u escapes
    assert "🎬".encode() in out


def test_a_dead_letter_of_non_utf8_bytes_carries_base64() -> None:
    value = b"\xff\xfe\x00binary"
    body = json.loads(dead_letter(source(), value, "value is not UTF-8", "not_utf8"))
    assert "value" not in body
    assert base64.b64decode(body["value_base64"]) == value


def test_a_dead_letter_of_a_tombstone_has_no_value() -> None:
    body = json.loads(dead_letter(source(), None, "record has no value (tombstone)", "empty"))
    assert "value" not in body and "value_base64" not in body
    assert body["code"] == "empty"


def test_a_dead_letter_for_each_unusable_value_is_json() -> None:
    for value in (None, b"\xff", b"{", b"[1]", b'{"n": 123456789012345678901234567890}'):
        try:
            to_document(source(), value, RECEIVED, movie_topic=False)
        except Unusable as exc:
            body = json.loads(dead_letter(source(), value, str(exc), exc.code))
            assert body["code"] == exc.code and body["reason"] == str(exc)
        else:
            pytest.fail(f"{value!r} was accepted")


# --- counters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (event("watch", movie_id=27205), ("watch", 27205)),
        ({"event_type": "rate"}, ("rate", None)),
        ({"movie_id": 603}, (None, 603)),
        ({}, (None, None)),
        ({"event_type": 1, "movie_id": "603"}, (None, None)),
        ({"event_type": "click", "movie_id": True}, ("click", None)),
        ({"event_type": "click", "movie_id": 603.0}, ("click", None)),
    ],
)
def test_counter_keys(record: dict[str, Any], expected: tuple[str | None, int | None]) -> None:
    assert counter_keys(record) == expected


def test_source_doc_id() -> None:
    assert Source("t", 0, 0, None, None).doc_id == "t:0:0"


def test_a_non_utc_offset_is_converted() -> None:
    _, doc = to_document(
        source(),
        encode(event(occurred_at="2026-01-01T00:30:00-05:30")),
        RECEIVED,
        movie_topic=False,
    )
    assert doc["occurred_at"] == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    assert doc["occurred_at"] == datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5.5)))
