"""Invalid events: 422 naming the field and the reason, counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import event
from tests.unit.gateway.fakes import KEY, FakePublisher, post, sample


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
