"""HTTP behaviour of the event gateway, with a fake publisher in place of Kafka.

The real Kafka path (acks, timeouts) is covered by the integration tests; here the publisher
is a small fake that records what it was given and can be told to fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cinepulse_common.rules import load_rules
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.publisher import KafkaPublisher, PublishError, Record
from cinepulse_event_gateway.settings import EventGatewaySettings
from tests.factories import event

KEY = {"X-Write-Key": "k1"}
TOPICS = {
    "watch": "user_watch_log",
    "rate": "user_rating_log",
    "comment": "user_comment_log",
    "click": "user_click_log",
}


class FakePublisher:
    """Stands in for :class:`KafkaPublisher`: records what it is asked to publish."""

    def __init__(self) -> None:
        self.published: list[Record] = []  # every record handed over
        self.acked: list[Record] = []  # those answered as acknowledged
        self.fail_all: str | None = None  # a reason: every record fails
        self.fail_keys: set[bytes] = set()  # records with these keys fail
        self.check_error: Exception | None = None
        self.timeouts: list[float] = []

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]:
        self.timeouts.append(timeout_s)
        out: list[PublishError | None] = []
        for r in records:
            self.published.append(r)
            if self.fail_all is not None:
                out.append(PublishError(self.fail_all))
            elif r.key in self.fail_keys:
                out.append(PublishError("no acknowledgement from Kafka within 5s"))
            else:
                self.acked.append(r)
                out.append(None)
        return out

    def check(self, timeout_s: float = 2.0) -> None:
        if self.check_error is not None:
            raise self.check_error

    def queue_length(self) -> int:
        return 0


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read CINEPULSE_* variables: the tests must not depend on the environment."""
    for name in list(os.environ):
        if name.upper().startswith("CINEPULSE_"):
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> EventGatewaySettings:
    values: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},
        "auth": {"keys": {"web": "k1", "ios": "k2"}},
    }
    values.update(overrides)
    return EventGatewaySettings(**values)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    app = create_app(make_settings(), publisher=publisher, rules=load_rules())
    with TestClient(app) as c:
        yield c


def _client(publisher: FakePublisher, **overrides: Any) -> TestClient:
    app = create_app(make_settings(**overrides), publisher=publisher, rules=load_rules())
    return TestClient(app)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _send(c: TestClient, path: str, data: Any, headers: dict[str, str] | None) -> Any:
    # serialised here: httpx's json=None would send no body at all
    body = json.dumps(data, ensure_ascii=False).encode()
    return c.post(
        path, content=body, headers={**KEY, "Content-Type": "application/json", **(headers or {})}
    )


def post(c: TestClient, data: Any, headers: dict[str, str] | None = None) -> Any:
    return _send(c, "/api/events", data, headers)


def post_batch(c: TestClient, data: Any, headers: dict[str, str] | None = None) -> Any:
    return _send(c, "/api/events/batch", data, headers)


# --- accepted ---------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", list(TOPICS))
def test_an_event_is_accepted_and_published_to_its_topic(
    client: TestClient, publisher: FakePublisher, event_type: str
) -> None:
    data = event(event_type, user_id="u-1042")
    before = datetime.now(UTC)
    r = post(client, data)
    after = datetime.now(UTC)
    assert r.status_code == 202, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "accepted", "event_id": data["event_id"]}

    [record] = publisher.acked
    assert record.topic == TOPICS[event_type]
    assert record.key == b"u-1042"
    value = json.loads(record.value)
    assert value["event_id"] == data["event_id"]
    assert value["event_type"] == event_type
    assert value["user_id"] == "u-1042"
    assert value["movie_id"] == data["movie_id"]
    received = datetime.fromisoformat(value["received_at"])
    assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1)
    assert publisher.timeouts == [5.0]  # limits.produce_timeout_s


def test_the_rating_is_a_json_number_in_the_record(
    client: TestClient, publisher: FakePublisher
) -> None:
    assert post(client, event("rate", payload={"rating": 3.5})).status_code == 202
    assert json.loads(publisher.acked[0].value)["payload"] == {"rating": 3.5}


def test_an_event_id_is_assigned_when_absent(client: TestClient, publisher: FakePublisher) -> None:
    data = event()
    del data["event_id"]
    r1, r2 = post(client, data), post(client, data)
    assert r1.status_code == r2.status_code == 202
    ids = [UUID(r.json()["event_id"]) for r in (r1, r2)]
    assert ids[0] != ids[1]
    assert [json.loads(rec.value)["event_id"] for rec in publisher.acked] == [str(i) for i in ids]


def test_a_received_at_sent_by_the_client_is_replaced(
    client: TestClient, publisher: FakePublisher
) -> None:
    data = event(received_at="2020-01-01T00:00:00Z")  # occurred_at: 5 s ago
    r = post(client, data)
    assert r.status_code == 202, r.text
    received = datetime.fromisoformat(json.loads(publisher.acked[0].value)["received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(seconds=30)


def test_a_client_received_at_cannot_bypass_the_future_skew_check(client: TestClient) -> None:
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    r = post(client, event(occurred_at=future, received_at=future))
    assert r.status_code == 422


def test_a_stale_client_received_at_does_not_reject_a_valid_event(client: TestClient) -> None:
    r = post(client, event(received_at="2000-01-01T00:00:00Z"))
    assert r.status_code == 202, r.text


def test_a_comment_in_any_script_is_accepted_and_kept_as_sent(
    client: TestClient, publisher: FakePublisher
) -> None:
    text = "Loved it 🎬🍿👩‍👩‍👧 — שלום עולם — مرحبا — e\u0301 n\u0303 — 日本語"
    r = post(client, event("comment", payload={"text": text}))
    assert r.status_code == 202, r.text
    assert json.loads(publisher.acked[0].value)["payload"]["text"] == text


def test_comment_length_counts_characters_after_nfc(client: TestClient) -> None:
    # 5000 decomposed "é" (10000 code points) are 5000 characters once composed
    assert post(client, event("comment", payload={"text": "e\u0301" * 5000})).status_code == 202
    assert post(client, event("comment", payload={"text": "🎬" * 5000})).status_code == 202


def test_position_within_the_tolerance_is_accepted(client: TestClient) -> None:
    payload = {"position_seconds": 5405, "duration_seconds": 5400}  # +5s tolerance
    assert post(client, event("watch", payload=payload)).status_code == 202


def test_json_media_type_variants_are_accepted(client: TestClient) -> None:
    body = json.dumps(event()).encode()
    for ctype in ("application/json; charset=utf-8", "Application/JSON", "application/x+json"):
        r = client.post("/api/events", content=body, headers={**KEY, "Content-Type": ctype})
        assert r.status_code == 202, (ctype, r.text)


def test_the_write_key_header_is_case_insensitive(client: TestClient) -> None:
    r = client.post("/api/events", json=event(), headers={"x-write-key": "k1"})
    assert r.status_code == 202


def test_auth_can_be_disabled(publisher: FakePublisher) -> None:
    with _client(publisher, auth={"enabled": False}) as c:
        assert c.post("/api/events", json=event()).status_code == 202


def test_auth_enabled_without_keys_refuses_to_start(publisher: FakePublisher) -> None:
    with pytest.raises(SystemExit, match="no write key is configured"):
        create_app(make_settings(auth={"keys": {}}), publisher=publisher)


def test_an_empty_write_key_refuses_to_start(publisher: FakePublisher) -> None:
    with pytest.raises(SystemExit, match="empty write key"):
        create_app(make_settings(auth={"keys": {"web": ""}}), publisher=publisher)


# --- 401 / 415 / 413 --------------------------------------------------------------------------
def test_a_missing_key_is_401(client: TestClient, publisher: FakePublisher) -> None:
    r = client.post("/api/events", json=event())
    assert r.status_code == 401
    assert "missing X-Write-Key" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "X-Write-Key"
    assert publisher.published == []


@pytest.mark.parametrize("key", ["wrong", "k1 extra", "K1", ""])
def test_an_invalid_key_is_401(client: TestClient, publisher: FakePublisher, key: str) -> None:
    for path in ("/api/events", "/api/events/batch"):
        r = client.post(path, json=event(), headers={"X-Write-Key": key})
        assert r.status_code == 401, r.text
        assert "X-Write-Key" in r.json()["detail"]
    assert publisher.published == []


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_non_json_content_type_is_415(
    client: TestClient, publisher: FakePublisher, ctype: str | None
) -> None:
    headers = dict(KEY)
    if ctype is not None:
        headers["Content-Type"] = ctype
    for path in ("/api/events", "/api/events/batch"):
        r = client.post(path, content=json.dumps(event()).encode(), headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["detail"]
    assert publisher.published == []


def _big_event(size: int) -> bytes:
    body = json.dumps(event("comment", payload={"text": "x" * size})).encode()
    assert len(body) > 1024
    return body


def test_a_body_over_the_limit_is_413_by_content_length(publisher: FakePublisher) -> None:
    with _client(publisher, limits={"max_body_bytes": 1024}) as c:
        body = _big_event(2000)
        for path in ("/api/events", "/api/events/batch"):
            r = c.post(path, content=body, headers={**KEY, "Content-Type": "application/json"})
            assert r.status_code == 413, r.text
            assert f"body of {len(body)} bytes exceeds 1024 bytes" in r.json()["detail"]
        # just under the limit is fine
        small = json.dumps(event()).encode()
        assert len(small) <= 1024
        r = c.post(
            "/api/events", content=small, headers={**KEY, "Content-Type": "application/json"}
        )
        assert r.status_code == 202
    assert len(publisher.published) == 1


def test_a_chunked_body_over_the_limit_is_413(publisher: FakePublisher) -> None:
    body = _big_event(2000)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 256):
            yield body[i : i + 256]

    with _client(publisher, limits={"max_body_bytes": 1024}) as c:
        r = c.post(
            "/api/events", content=chunks(), headers={**KEY, "Content-Type": "application/json"}
        )
        assert r.status_code == 413, r.text
        # no Content-Length: the limit was enforced while reading the stream
        assert r.json()["detail"] == "body exceeds 1024 bytes"
    assert publisher.published == []


def test_a_non_numeric_content_length_is_400(client: TestClient) -> None:
    r = client.post(
        "/api/events",
        content=json.dumps(event()).encode(),
        headers={**KEY, "Content-Type": "application/json", "Content-Length": "12abc"},
    )
    assert r.status_code == 400


# --- 422 --------------------------------------------------------------------------------------
def _without(field: str) -> dict[str, Any]:
    data = event()
    del data[field]
    return data


INVALID: list[tuple[str, Any, str, str]] = [
    ("rating 4.3", event("rate", payload={"rating": 4.3}), "payload.rating", "steps of 0.5"),
    ("rating 6", event("rate", payload={"rating": 6}), "payload.rating", "0.5 to 5.0"),
    ("rating 0", event("rate", payload={"rating": 0}), "payload.rating", "0.5 to 5.0"),
    ("rating text", event("rate", payload={"rating": "five"}), "payload.rating", ""),
    ("unknown event_type", event(event_type="dance"), "event_type", "unknown event_type"),
    ("missing event_type", _without("event_type"), "event_type", "missing event_type"),
    ("missing user_id", _without("user_id"), "user_id", "Field required"),
    ("missing occurred_at", _without("occurred_at"), "occurred_at", "Field required"),
    ("bad user_id", event(user_id="has spaces"), "user_id", "must match"),
    ("movie_id 0", event(movie_id=0), "movie_id", "movie_id must be"),
    ("huge movie_id", event(movie_id=10**30), "movie_id", "movie_id must be"),
    (
        "negative position",
        event("watch", payload={"position_seconds": -1, "duration_seconds": 5400}),
        "payload.position_seconds",
        "greater than or equal to 0",
    ),
    (
        "position beyond duration",
        event("watch", payload={"position_seconds": 5406, "duration_seconds": 5400}),
        # a cross-field (model) rule: the gateway names the field the message is about
        "payload.position_seconds",
        "beyond duration_seconds",
    ),
    (
        "duration beyond the maximum",
        event("watch", payload={"position_seconds": 0, "duration_seconds": 90000}),
        "payload.duration_seconds",
        "exceeds 86400",
    ),
    ("empty comment", event("comment", payload={"text": ""}), "payload.text", "1 to 5000"),
    ("blank comment", event("comment", payload={"text": " \n\t "}), "payload.text", "1 to 5000"),
    (
        "5001-char comment",
        event("comment", payload={"text": "x" * 5001}),
        "payload.text",
        "1 to 5000",
    ),
    (
        "unknown click target",
        event("click", payload={"target": "nuke"}),
        "payload.target",
        "unknown click target",
    ),
    (
        "far-future occurred_at",
        event(occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
        # a model-level check, named after the field its message is about
        "occurred_at",
        "occurred_at is more than 300s in the future",
    ),
    (
        "occurred_at too old",
        event(occurred_at="1900-01-01T00:00:00Z"),
        "occurred_at",
        "days old",
    ),
    (
        "occurred_at without timezone",
        event(occurred_at="2024-01-01T10:00:00"),
        "occurred_at",
        "timezone",
    ),
    ("occurred_at not a date", event(occurred_at="yesterday"), "occurred_at", ""),
    ("extra unknown field", event(unexpected="x"), "unexpected", "Extra inputs are not permitted"),
    (
        "extra payload field",
        event("rate", payload={"rating": 4, "stars": 4}),
        "payload.stars",
        "Extra inputs",
    ),
    ("JSON array", [event()], "body", "object"),
    ("JSON null", None, "body", "object"),
]


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [pytest.param(d, f, r, id=name) for name, d, f, r in INVALID],
)
def test_an_invalid_event_is_422_naming_field_and_reason(
    client: TestClient, publisher: FakePublisher, data: Any, field: str, reason: str
) -> None:
    r = post(client, data)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    assert all(set(e) == {"field", "reason", "type"} for e in errors)
    assert publisher.published == []


@pytest.mark.parametrize(
    "body", [b"{", b"", b"not json", b'{"event_type": "rate",}', b"\xff\xfe{}"]
)
def test_malformed_json_is_422(client: TestClient, body: bytes) -> None:
    r = client.post(
        "/api/events", content=body, headers={**KEY, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["field"] == "body"
    assert err["reason"].startswith("malformed JSON")
    assert err["type"] == "json_invalid"


def test_rejections_are_counted(client: TestClient) -> None:
    labels = {"event_type": "rate", "reason": "value_error"}
    before = sample("cinepulse_gateway_events_rejected_total", labels)
    post(client, event("rate", payload={"rating": 4.3}))
    assert sample("cinepulse_gateway_events_rejected_total", labels) == before + 1


# --- strict validation: each refusal a 422 naming the field and the reason --------------------
NIL = "00000000-0000-0000-0000-000000000000"
NOT_A_STRING = "Input should be a JSON number, not a string"
NOT_A_BOOLEAN = "Input should be a JSON number, not a boolean"
STRICT: list[tuple[str, Any, str, str, str]] = [
    # (case, event, field, reason, type)
    (
        "occurred_at 401 days ago",
        event(occurred_at=(datetime.now(UTC) - timedelta(days=401)).isoformat()),
        "occurred_at",
        "occurred_at is more than 400 days old",
        "value_error",
    ),
    ("movie_id as a string", event(movie_id="42"), "movie_id", NOT_A_STRING, "int_type"),
    ("movie_id as a boolean", event(movie_id=True), "movie_id", NOT_A_BOOLEAN, "int_type"),
    (
        "rating as a string",
        event("rate", payload={"rating": "4.5"}),
        "payload.rating",
        NOT_A_STRING,
        "decimal_type",
    ),
    (
        "rating as a boolean",
        event("rate", payload={"rating": True}),
        "payload.rating",
        NOT_A_BOOLEAN,
        "decimal_type",
    ),
    (
        "position as a string",
        event("watch", payload={"position_seconds": "10", "duration_seconds": 5400}),
        "payload.position_seconds",
        NOT_A_STRING,
        "float_type",
    ),
    (
        "duration as a boolean",
        event("watch", payload={"position_seconds": 0, "duration_seconds": True}),
        "payload.duration_seconds",
        NOT_A_BOOLEAN,
        "float_type",
    ),
    (
        "nil event_id",
        event(event_id=NIL),
        "event_id",
        f"event_id must not be the nil UUID {NIL}",
        "value_error",
    ),
    (
        "bidi override in user_id",
        event(user_id="user\u202e24"),
        "user_id",
        "contains a control character U+202E",
        "value_error",
    ),
    (
        "escape in session_id",
        event(session_id="s-\x1b[31m"),
        "session_id",
        "contains a control character U+001B",
        "value_error",
    ),
    (
        "right-to-left mark in a click target",
        event("click", payload={"target": "trailer\u200f"}),
        "payload.target",
        "contains a control character U+200F",
        "value_error",
    ),
    (
        "carriage return in a comment",
        event("comment", payload={"text": "fine\rfilm"}),
        "payload.text",
        "contains a control character U+000D",
        "value_error",
    ),
    (
        "bidi isolate in a comment",
        event("comment", payload={"text": "fine \u2066film"}),
        "payload.text",
        "contains a control character U+2066",
        "value_error",
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "reason", "kind"), [pytest.param(*c[1:], id=c[0]) for c in STRICT]
)
def test_a_strict_refusal_is_422_naming_field_and_reason(
    client: TestClient, publisher: FakePublisher, data: Any, field: str, reason: str, kind: str
) -> None:
    r = post(client, data)
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": [{"field": field, "reason": reason, "type": kind}]}
    assert publisher.published == []


@pytest.mark.parametrize(
    ("data", "field", "reason", "kind"), [pytest.param(*c[1:], id=c[0]) for c in STRICT]
)
def test_a_strict_refusal_in_a_batch_names_field_and_reason(
    client: TestClient, publisher: FakePublisher, data: Any, field: str, reason: str, kind: str
) -> None:
    r = post_batch(client, [event(user_id="u-good"), data])
    assert r.status_code == 202, r.text
    assert r.json()["results"][1] == {
        "index": 1,
        "status": "rejected",
        "errors": [{"field": field, "reason": reason, "type": kind}],
    }
    assert [rec.key for rec in publisher.acked] == [b"u-good"]
    r = post_batch(client, [data])
    assert r.status_code == 422, r.text
    assert r.json()["rejected"] == 1


def test_strictly_valid_events_are_still_accepted(
    client: TestClient, publisher: FakePublisher
) -> None:
    valid = [
        event(occurred_at=(datetime.now(UTC) - timedelta(days=399)).isoformat()),
        event("watch", payload={"position_seconds": 10, "duration_seconds": 5400}),
        event("rate", payload={"rating": 4.5}),
        event("rate", payload={"rating": 4}),
        event(event_id="00000000-0000-0000-0000-000000000001"),
        event("comment", payload={"text": "Line one\n\tindented \u05e9\u05dc\u05d5\u05dd \u200b"}),
        event("click", user_id="critic@cine.example", session_id="s-\u00e9t\u00e9"),
    ]
    for data in valid:
        r = post(client, data)
        assert r.status_code == 202, (data, r.text)
    r = post_batch(client, valid)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(valid)
    # integers where floats are expected: floats in the record
    watch = json.loads(publisher.acked[1].value)["payload"]
    assert watch == {"position_seconds": 10.0, "duration_seconds": 5400.0}
    assert json.loads(publisher.acked[3].value)["payload"] == {"rating": 4.0}


def _repeat(data: Any, key: str, first: Any, second: Any) -> str:
    """``data`` as JSON text in which the pair ``key: first`` is followed by ``key: second``."""
    text = json.dumps(data)
    pair = f"{json.dumps(key)}: {json.dumps(first)}"
    assert text.count(pair) == 1, pair
    return text.replace(pair, f"{pair}, {json.dumps(key)}: {json.dumps(second)}")


def _raw(c: TestClient, path: str, body: str | bytes) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return c.post(path, content=content, headers={**KEY, "Content-Type": "application/json"})


def _duplicate(key: str) -> str:
    return f"duplicate key {key!r}: a key may appear only once in an object"


REPEATED = [
    ("user_id", _repeat(event(), "user_id", "user-42", "admin"), "user_id", "user_id"),
    ("event_type", _repeat(event(), "event_type", "rate", "click"), "event_type", "event_type"),
    ("in the payload", _repeat(event(), "rating", 4.5, 0.5), "payload.rating", "rating"),
    (
        "deep in an unknown field",
        _repeat(event(extra={"a": [{"b": 1}]}), "b", 1, 2),
        "extra.a.0.b",
        "b",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "key"), [pytest.param(*c[1:], id=c[0]) for c in REPEATED]
)
def test_a_repeated_key_is_422_naming_it(
    client: TestClient, publisher: FakePublisher, body: str, field: str, key: str
) -> None:
    r = _raw(client, "/api/events", body)
    assert r.status_code == 422, r.text
    assert r.json() == {
        "detail": [{"field": field, "reason": _duplicate(key), "type": "duplicate_key"}]
    }
    assert publisher.published == []


def test_a_repeated_key_in_a_batch_refuses_that_event(
    client: TestClient, publisher: FakePublisher
) -> None:
    repeated = _repeat(event(user_id="u-twice"), "rating", 4.5, 1)
    r = _raw(client, "/api/events/batch", f"[{json.dumps(event(user_id='u-once'))}, {repeated}]")
    assert r.status_code == 202, r.text
    assert r.json()["results"][1] == {
        "index": 1,
        "status": "rejected",
        "errors": [
            {"field": "payload.rating", "reason": _duplicate("rating"), "type": "duplicate_key"}
        ],
    }
    assert [rec.key for rec in publisher.acked] == [b"u-once"]
    r = _raw(client, "/api/events/batch", f"[{repeated}]")
    assert r.status_code == 422, r.text
    assert r.json()["rejected"] == 1


def test_an_answer_names_at_most_ten_repeated_keys(client: TestClient) -> None:
    pairs = ", ".join(f'"k{i}": 1, "k{i}": 2' for i in range(50))
    r = _raw(client, "/api/events", "{" + pairs + "}")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [e["field"] for e in detail] == [f"k{i}" for i in range(10)]
    assert all(e["type"] == "duplicate_key" for e in detail)


def test_a_repeated_key_is_counted_as_such(client: TestClient) -> None:
    labels = {"event_type": "rate", "reason": "duplicate_key"}
    before = sample("cinepulse_gateway_events_rejected_total", labels)
    _raw(client, "/api/events", _repeat(event(), "user_id", "user-42", "admin"))
    assert sample("cinepulse_gateway_events_rejected_total", labels) == before + 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            b'{"event_type": "rate", "movie_id": NaN}',
            "malformed JSON: NaN is not a JSON number",
            id="NaN",
        ),
        pytest.param(
            b'{"movie_id": -Infinity}',
            "malformed JSON: -Infinity is not a JSON number",
            id="-Infinity",
        ),
        pytest.param(b"[" * 100_000, "malformed JSON: nested too deeply", id="deep nesting"),
        pytest.param(
            b'{"movie_id": 1' + b"0" * 5000 + b"}",
            "malformed JSON: Exceeds the limit",
            id="5001-digit integer",
        ),
    ],
)
def test_what_json_does_not_allow_is_malformed(
    client: TestClient, publisher: FakePublisher, body: bytes, reason: str
) -> None:
    for path in ("/api/events", "/api/events/batch"):
        r = _raw(client, path, body)
        assert r.status_code == 422, r.text
        [err] = r.json()["detail"]
        assert err["field"] == "body" and err["type"] == "json_invalid"
        assert err["reason"].startswith(reason), err
    assert publisher.published == []


def test_a_lone_surrogate_is_422_not_a_server_error(
    client: TestClient, publisher: FakePublisher
) -> None:
    text = json.dumps(event("comment")).replace("Loved every minute", "Loved \\ud800 minute")
    r = _raw(client, "/api/events", text)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [
        {
            "field": "payload.text",
            "reason": "contains a lone surrogate U+D800 (not a Unicode character)",
            "type": "string_unicode",
        }
    ]
    r = _raw(client, "/api/events", b'{"\\udc00": 1}')
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["field"] == "body" and "U+DC00" in err["reason"]
    assert publisher.published == []


# --- batch ------------------------------------------------------------------------------------
def test_a_mixed_batch_reports_each_event(client: TestClient, publisher: FakePublisher) -> None:
    good1 = event("rate", user_id="u-1")
    bad = event("rate", payload={"rating": 4.3})
    good2 = event("click", user_id="u-2")
    del good2["event_id"]
    r = post_batch(client, [good1, bad, good2])
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"], body["unavailable"]) == (2, 1, 0)
    res = body["results"]
    assert [x["index"] for x in res] == [0, 1, 2]
    assert [x["status"] for x in res] == ["accepted", "rejected", "accepted"]
    assert res[0]["event_id"] == good1["event_id"]
    assert UUID(res[2]["event_id"])
    assert "event_id" not in res[1]
    assert any(e["field"] == "payload.rating" for e in res[1]["errors"])
    assert [(rec.topic, rec.key) for rec in publisher.acked] == [
        ("user_rating_log", b"u-1"),
        ("user_click_log", b"u-2"),
    ]
    assert json.loads(publisher.acked[1].value)["event_id"] == res[2]["event_id"]


def test_a_batch_of_non_objects_is_rejected_item_by_item(client: TestClient) -> None:
    r = post_batch(client, [1, "x", None, [], {}])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["accepted"] == 0 and body["rejected"] == 5
    assert all(x["status"] == "rejected" and x["errors"] for x in body["results"])


def test_a_batch_where_every_event_is_invalid_is_422(
    client: TestClient, publisher: FakePublisher
) -> None:
    r = post_batch(client, [event(event_type="dance"), event(user_id="")])
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert publisher.acked == []


def test_an_all_invalid_batch_with_the_real_publisher_is_422() -> None:
    """Regression: publish_many([]) used to hand asyncio.wait() nothing and answer 500."""
    # the constructor (which would create a producer) is skipped: nothing is sent anyway
    real = object.__new__(KafkaPublisher)
    app = create_app(make_settings(), publisher=real, rules=load_rules())
    with TestClient(app, raise_server_exceptions=False) as c:
        r = post_batch(c, [event(event_type="dance")])
    assert r.status_code == 422, r.text
    assert r.json()["rejected"] == 1


def test_publish_many_with_no_records_returns_no_results() -> None:
    """An empty list gives an empty answer (no asyncio.wait of nothing)."""
    real = object.__new__(KafkaPublisher)
    assert asyncio.run(real.publish_many([], 1.0)) == []


def test_a_batch_over_the_event_limit_is_413(publisher: FakePublisher) -> None:
    with _client(publisher, limits={"max_batch_events": 3}) as c:
        r = post_batch(c, [event() for _ in range(4)])
        assert r.status_code == 413, r.text
        assert "4 events exceeds 3" in r.json()["detail"]
        assert post_batch(c, [event() for _ in range(3)]).status_code == 202
    assert len(publisher.published) == 3


def test_an_empty_batch_is_422(client: TestClient) -> None:
    r = post_batch(client, [])
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["field"] == "body" and "empty" in err["reason"]


@pytest.mark.parametrize("data", [event(), "x", 1, None])
def test_a_batch_that_is_not_an_array_is_422(client: TestClient, data: Any) -> None:
    r = post_batch(client, data)
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["field"] == "body" and "array" in err["reason"]


def test_a_malformed_batch_is_422(client: TestClient) -> None:
    r = client.post(
        "/api/events/batch", content=b"[{", headers={**KEY, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["field"] == "body" and err["reason"].startswith("malformed JSON")


# --- Kafka unavailable ------------------------------------------------------------------------
def test_an_unacknowledged_event_is_503_with_the_event_id(
    client: TestClient, publisher: FakePublisher
) -> None:
    publisher.fail_all = "no acknowledgement from Kafka within 5s"
    data = event()
    labels = {"event_type": "rate", "reason": "kafka_unavailable"}
    before = sample("cinepulse_gateway_events_rejected_total", labels)
    r = post(client, data)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    body = r.json()
    assert body["event_id"] == data["event_id"]
    assert "within 5s" in body["detail"] and "same event_id" in body["detail"]
    assert sample("cinepulse_gateway_events_rejected_total", labels) == before + 1


def test_a_503_without_a_client_event_id_names_the_assigned_one(
    publisher: FakePublisher,
) -> None:
    publisher.fail_all = "QUEUE_FULL"
    data = event()
    del data["event_id"]
    with _client(publisher, limits={"retry_after_s": 17}) as c:
        r = post(c, data)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "17"
    assert r.json()["event_id"] == json.loads(publisher.published[0].value)["event_id"]


def test_a_partly_unacknowledged_batch_is_503_naming_what_to_resend(
    client: TestClient, publisher: FakePublisher
) -> None:
    publisher.fail_keys = {b"u-fail"}
    ok = event(user_id="u-ok")
    lost = event(user_id="u-fail")
    bad = event(event_type="dance")
    r = post_batch(client, [ok, lost, bad])
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    body = r.json()
    assert (body["accepted"], body["rejected"], body["unavailable"]) == (1, 1, 1)
    res = body["results"]
    assert res[0] == {"index": 0, "status": "accepted", "event_id": ok["event_id"]}
    assert res[1]["status"] == "unavailable"
    assert res[1]["event_id"] == lost["event_id"]
    assert "acknowledgement" in res[1]["reason"]
    assert res[2]["status"] == "rejected"
    assert [rec.key for rec in publisher.acked] == [b"u-ok"]


# --- slow clients, concurrency (OWASP API4) ---------------------------------------------------
JSON_KEY = {**KEY, "Content-Type": "application/json"}


def _serve_async(app: FastAPI, session: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run ``session`` against the app on this thread's event loop (lifespan included):
    requests can then overlap, and a body can arrive as slowly as the test likes."""

    async def run() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                return await session(c)

    return asyncio.run(run())


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
def test_a_body_slower_than_the_read_timeout_is_408_and_not_published(
    publisher: FakePublisher, path: str
) -> None:
    data: Any = event() if path == "/api/events" else [event()]
    body = json.dumps(data).encode()
    app = create_app(
        make_settings(limits={"body_read_timeout_s": 0.3}), publisher=publisher, rules=load_rules()
    )

    async def chunks(pause_s: float) -> AsyncIterator[bytes]:
        step = len(body) // 4 + 1
        for i in range(0, len(body), step):
            yield body[i : i + step]
            await asyncio.sleep(pause_s)

    async def session(c: httpx.AsyncClient) -> tuple[httpx.Response, float, httpx.Response]:
        start = time.monotonic()
        # four pieces 1 s apart: each on its own is quick, the whole body takes 4 s
        slow = await c.post(path, content=chunks(1.0), headers=JSON_KEY)
        elapsed = time.monotonic() - start
        # the same body in pieces, in time: accepted
        prompt = await c.post(path, content=chunks(0), headers=JSON_KEY)
        return slow, elapsed, prompt

    before = sample("cinepulse_gateway_body_read_timeouts_total")
    slow, elapsed, prompt = _serve_async(app, session)
    assert slow.status_code == 408, slow.text
    assert slow.json()["detail"] == "request body not received within 0.3 s"
    assert slow.headers["connection"] == "close"
    # answered at the 0.3 s deadline, not once the body was in (4 s): the margin is wide so
    # that a busy machine cannot fail it
    assert elapsed < 3.0
    assert sample("cinepulse_gateway_body_read_timeouts_total") == before + 1
    assert prompt.status_code == 202, prompt.text
    assert len(publisher.published) == 1  # the prompt one only


class GatedPublisher(FakePublisher):
    """Holds every publish until ``gate`` is set: the requests stay in the app."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def publish_many(
        self, records: Sequence[Record], timeout_s: float
    ) -> list[PublishError | None]:
        self.waiting += 1
        await self.gate.wait()
        return await super().publish_many(records, timeout_s)


def test_a_request_over_the_concurrency_limit_is_503_at_once_but_probes_are_not() -> None:
    publisher = GatedPublisher()
    settings = make_settings(limits={"max_concurrent_requests": 2, "retry_after_s": 7})
    app = create_app(settings, publisher=publisher, rules=load_rules())

    async def session(c: httpx.AsyncClient) -> dict[str, Any]:
        held = [
            asyncio.create_task(c.post("/api/events", json=event(), headers=KEY)),
            asyncio.create_task(c.post("/api/events/batch", json=[event()], headers=KEY)),
        ]
        async with asyncio.timeout(5):
            while publisher.waiting < 2:  # both are inside the app, waiting for Kafka
                await asyncio.sleep(0.01)
        out: dict[str, Any] = {}
        # answered at once (a queued request would wait for the gate: the timeout fails it)
        async with asyncio.timeout(2):
            out["over"] = await c.post("/api/events", json=event(), headers=KEY)
            out["over_batch"] = await c.post("/api/events/batch", json=[event()], headers=KEY)
            for probe in ("/healthz", "/readyz", "/metrics"):
                out[probe] = await c.get(probe)
        publisher.gate.set()
        out["held"] = await asyncio.gather(*held)
        out["after"] = await c.post("/api/events", json=event(), headers=KEY)  # slot freed
        return out

    before = sample("cinepulse_gateway_concurrency_limited_total")
    out = _serve_async(app, session)
    for over in (out["over"], out["over_batch"]):
        assert over.status_code == 503, over.text
        assert over.headers["retry-after"] == "7"
        assert "too many requests" in over.json()["detail"]
    assert sample("cinepulse_gateway_concurrency_limited_total") == before + 2
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert out[probe].status_code == 200, (probe, out[probe].text)
    assert "cinepulse_gateway_concurrency_limited_total" in out["/metrics"].text
    assert [r.status_code for r in out["held"]] == [202, 202]
    assert out["after"].status_code == 202
    assert publisher.waiting == 3  # the refused ones never reached the publisher
    assert len(publisher.acked) == 3


def test_the_limits_default_and_are_validated() -> None:
    limits = make_settings().limits
    assert (limits.max_concurrent_requests, limits.body_read_timeout_s) == (256, 10.0)
    for bad in ({"max_concurrent_requests": 0}, {"body_read_timeout_s": 0}):
        with pytest.raises(ValueError, match="greater than"):
            make_settings(limits=bad)


# --- rate limit -------------------------------------------------------------------------------
def _away_from_the_minute_edge() -> None:
    """The limiter's windows are aligned on whole minutes and the previous window's count
    decays across the edge: start with enough of the minute left for the test."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)


def test_the_sixth_event_within_the_minute_is_429(publisher: FakePublisher) -> None:
    before = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "unknown", "reason": "rate_limited"},
    )
    _away_from_the_minute_edge()
    with _client(publisher, rate_limit="5/minute") as c:
        for _ in range(5):
            assert post(c, event()).status_code == 202
        r = post(c, event())
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "rate limit" in r.json()["detail"]
        # the limit is per write key
        assert post(c, event(), headers={"X-Write-Key": "k2"}).status_code == 202
    assert len(publisher.published) == 6
    after = sample(
        "cinepulse_gateway_events_rejected_total",
        {"event_type": "unknown", "reason": "rate_limited"},
    )
    assert after == before + 1


def test_a_batch_counts_each_event_against_the_rate_limit(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with _client(publisher, rate_limit="5/minute") as c:
        r = post_batch(c, [event() for _ in range(10)])
        assert r.status_code == 429, r.text
        assert "10 events exceed the rate limit" in r.json()["detail"]
        assert post_batch(c, [event() for _ in range(3)]).status_code == 202
        r = post_batch(c, [event() for _ in range(3)])  # 6 > 5
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert post_batch(c, [event() for _ in range(2)]).status_code == 202  # exactly 5
    assert len(publisher.published) == 5


def test_an_invalid_rate_limit_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        make_settings(rate_limit="lots")
    for bad in ("", "0/second"):
        with pytest.raises(ValueError, match="rate_limit"):
            make_settings(rate_limit=bad)
    with pytest.raises(ValueError, match=r"rate_limits\['ios'\] 'lots'"):
        make_settings(rate_limits={"ios": "lots"})


def _limit_headers(r: httpx.Response) -> tuple[int, int, int]:
    h = r.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def test_a_write_key_is_limited_by_default_to_100_events_a_second(
    publisher: FakePublisher,
) -> None:
    settings = make_settings()
    assert (settings.rate_limit, settings.rate_limits) == ("100/second", {})
    with _client(publisher) as c:
        r = post(c, event())
        assert r.status_code == 202, r.text
        assert _limit_headers(r) == (100, 99, 1)
        r = post_batch(c, [event() for _ in range(101)])
        assert r.status_code == 429, r.text
        assert r.json() == {
            "detail": "101 events exceed the rate limit of 100 per 1 second for one request"
        }
        assert _limit_headers(r)[0] == 100
        assert r.headers["retry-after"] == "1"


def test_the_headers_count_down_to_429_then_reset(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with _client(publisher, rate_limit="5/minute") as c:
        seen = []
        for _ in range(3):
            r = post(c, event())
            assert r.status_code == 202, r.text
            seen.append(_limit_headers(r))
        r = post_batch(c, [event(), event()])
        assert r.status_code == 202, r.text
        seen.append(_limit_headers(r))
        assert [(lim, rem) for lim, rem, _ in seen] == [(5, 4), (5, 3), (5, 2), (5, 0)]
        assert all(1 <= reset <= 60 for _, _, reset in seen)
        r = post(c, event())
        assert r.status_code == 429, r.text
        # the body keeps its shape and names the limit and the client
        assert r.json() == {"detail": "rate limit 5 per 1 minute exceeded for client 'web'"}
        limit, remaining, reset = _limit_headers(r)
        assert (limit, remaining) == (5, 0)
        assert r.headers["retry-after"] == str(reset)
        # a 422 after the count carries them too
        r = post(c, {"event_type": "rate"}, headers={"X-Write-Key": "k2"})
        assert r.status_code == 422
        assert _limit_headers(r)[:2] == (5, 4)
    with _client(publisher, rate_limit="3/second") as c:
        assert [_limit_headers(post(c, event()))[1] for _ in range(3)] == [2, 1, 0]
        r = post(c, event())
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        time.sleep(2.1)  # two whole windows: the sliding count has nothing left
        r = post(c, event())
        assert r.status_code == 202, r.text
        assert _limit_headers(r) == (3, 2, 1)


def test_a_key_with_its_own_limit(publisher: FakePublisher) -> None:
    _away_from_the_minute_edge()
    with _client(publisher, rate_limits={"ios": "2/minute"}) as c:
        ios = {"X-Write-Key": "k2"}
        assert [post(c, event(), headers=ios).status_code for _ in range(3)] == [202, 202, 429]
        r = post(c, event(), headers=ios)
        assert "rate limit 2 per 1 minute exceeded for client 'ios'" in r.json()["detail"]
        # the other key keeps the default
        r = post(c, event())
        assert r.status_code == 202
        assert _limit_headers(r)[:2] == (100, 99)


@pytest.mark.parametrize("spelling", ["unlimited", "none", "Unlimited"])
def test_an_unlimited_key_is_never_counted(publisher: FakePublisher, spelling: str) -> None:
    _away_from_the_minute_edge()
    with _client(publisher, rate_limit="2/minute", rate_limits={"web": spelling}) as c:
        for _ in range(5):
            r = post(c, event())
            assert r.status_code == 202, r.text
            assert not any(h.startswith("x-ratelimit") for h in r.headers)
        assert post_batch(c, [event() for _ in range(50)]).status_code == 202
        ios = {"X-Write-Key": "k2"}
        assert [post(c, event(), headers=ios).status_code for _ in range(3)] == [202, 202, 429]
    assert len(publisher.acked) == 57


def test_the_rate_limit_headers_are_readable_by_a_browser(publisher: FakePublisher) -> None:
    origin = "https://cinepulse.example.com"
    with _client(publisher, cors_origins=[origin]) as c:
        r = post(c, event(), headers={"Origin": origin})
        assert r.status_code == 202
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        } <= exposed


# --- CORS -------------------------------------------------------------------------------------
def test_cors_preflight_from_an_allowed_origin(publisher: FakePublisher) -> None:
    with _client(publisher, cors_origins=["https://app.example"]) as c:
        r = c.options(
            "/api/events",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Write-Key, Content-Type",
            },
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "x-write-key" in r.headers["access-control-allow-headers"].lower()

        r = c.options(
            "/api/events",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers

        # actual requests carry the header too, errors included
        r = post(c, event(), headers={"Origin": "https://app.example"})
        assert r.status_code == 202
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.post("/api/events", json=event(), headers={"Origin": "https://app.example"})
        assert r.status_code == 401
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_no_cors_headers_without_configured_origins(client: TestClient) -> None:
    r = post(client, event(), headers={"Origin": "https://app.example"})
    assert r.status_code == 202
    assert "access-control-allow-origin" not in r.headers


# --- health, metrics ----------------------------------------------------------------------------
def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_does_not_follow_kafka(client: TestClient, publisher: FakePublisher) -> None:
    """A Kafka outage must not take the pods out of their Service: the app answers 503."""
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"gateway": "ok"}}
    publisher.check_error = RuntimeError("no broker in cluster metadata at kafka-0:9092")
    publisher.fail_all = "_ALL_BROKERS_DOWN: 1/1 brokers are down"
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200
    r = post(client, event())
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"


def test_kafka_reachability_is_a_metric(publisher: FakePublisher) -> None:
    from cinepulse_event_gateway import app as gateway_app

    async def watch_twice() -> list[float]:
        seen: list[float] = []
        task = asyncio.create_task(gateway_app._watch_kafka(publisher, interval_s=0.01))
        await asyncio.sleep(0.2)
        seen.append(sample("cinepulse_gateway_kafka_reachable"))
        publisher.check_error = RuntimeError("no broker")
        await asyncio.sleep(0.2)
        seen.append(sample("cinepulse_gateway_kafka_reachable"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(watch_twice()) == [1.0, 0.0]


def test_metrics_count_accepted_events_and_requests(client: TestClient) -> None:
    accepted = ("cinepulse_gateway_events_accepted_total", {"event_type": "rate"})
    requests_ = (
        "cinepulse_gateway_http_requests_total",
        {"route": "/api/events", "method": "POST", "status": "202"},
    )
    unauthorised = (
        "cinepulse_gateway_http_requests_total",
        {"route": "/api/events", "method": "POST", "status": "401"},
    )
    before = [sample(*s) for s in (accepted, requests_, unauthorised)]
    assert post(client, event()).status_code == 202
    assert post_batch(client, [event(), event()]).status_code == 202
    assert client.post("/api/events", json=event()).status_code == 401
    after = [sample(*s) for s in (accepted, requests_, unauthorised)]
    assert after[0] == before[0] + 3
    assert after[1] == before[1] + 1
    assert after[2] == before[2] + 1

    text = client.get("/metrics").text
    assert "cinepulse_gateway_events_accepted_total" in text
    assert "cinepulse_gateway_http_requests_total" in text


# --- OpenAPI ----------------------------------------------------------------------------------
def test_openapi_documents_the_events_api(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    schemas = spec["components"]["schemas"]
    for name in ("Event", "WatchEvent", "RateEvent", "CommentEvent", "ClickEvent"):
        assert name in schemas, name
    assert schemas["RateEvent"]["properties"]["received_at"]["readOnly"] is True
    assert spec["components"]["securitySchemes"]["WriteKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Write-Key",
        "description": spec["components"]["securitySchemes"]["WriteKey"]["description"],
    }

    single = spec["paths"]["/api/events"]["post"]
    assert single["security"] == [{"WriteKey": []}]
    content = single["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/Event"}
    assert set(content["examples"]) == {"watch", "rate", "comment", "click"}
    for code in ("202", "401", "413", "415", "422", "429", "503"):
        assert code in single["responses"], code

    batch = spec["paths"]["/api/events/batch"]["post"]
    assert batch["security"] == [{"WriteKey": []}]
    bcontent = batch["requestBody"]["content"]["application/json"]
    assert bcontent["schema"]["maxItems"] == 500
    assert bcontent["example"]
    for code in ("202", "401", "413", "415", "422", "429", "503"):
        assert code in batch["responses"], code

    # the rate limit's answer headers, and Retry-After with a 429 and a 503
    rate = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    for op in (single, batch):
        for code in ("202", "422", "429", "503"):
            assert rate <= set(op["responses"][code]["headers"]), code
        for code in ("429", "503"):
            assert "Retry-After" in op["responses"][code]["headers"], code
    described = " ".join(spec["info"]["description"].split())
    assert "with N pods a key may reach N times the limit" in described

    # health routes carry no security requirement
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_openapi_examples_are_valid_events(client: TestClient, publisher: FakePublisher) -> None:
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/api/events"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    for name, ex in examples.items():
        data = dict(ex["value"], occurred_at=datetime.now(UTC).isoformat())
        r = post(client, data)
        assert r.status_code == 202, (name, r.text)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_follow_the_environment_and_the_setting(publisher: FakePublisher, path: str) -> None:
    for environment, enabled, status in [
        ("production", None, 404),
        ("test", None, 404),
        ("development", None, 200),
        ("production", True, 200),
        ("development", False, 404),
    ]:
        overrides: dict[str, Any] = {"environment": environment}
        if enabled is not None:
            overrides["docs_enabled"] = enabled
        with _client(publisher, **overrides) as c:
            assert c.get(path).status_code == status, (environment, enabled)


def test_the_custom_openapi_is_built_without_its_route(publisher: FakePublisher) -> None:
    """Docs off: no route, but ``app.openapi()`` still gives the customised document."""
    app = create_app(make_settings(environment="production"), publisher=publisher)
    with TestClient(app) as c:
        assert c.get("/openapi.json").status_code == 404
    spec = app.openapi()
    assert "RateEvent" in spec["components"]["schemas"]
    assert "WriteKey" in spec["components"]["securitySchemes"]


def test_openapi_without_auth_has_no_write_key_scheme(publisher: FakePublisher) -> None:
    with _client(publisher, auth={"enabled": False}) as c:
        spec = c.get("/openapi.json").json()
    assert "WriteKey" not in spec["components"].get("securitySchemes", {})
