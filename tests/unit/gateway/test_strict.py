"""Strict validation: each refusal a 422 naming the field and the reason; repeated keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import event
from tests.unit.gateway.fakes import KEY, FakePublisher, post, post_batch, sample

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
