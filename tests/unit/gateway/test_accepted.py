"""Accepted events: published to their topic, as sent; auth settings at start-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from cinepulse_event_gateway.app import create_app
from tests.factories import event
from tests.unit.gateway.fakes import KEY, TOPICS, FakePublisher, make_client, make_settings, post


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
    with make_client(publisher, auth={"enabled": False}) as c:
        assert c.post("/api/events", json=event()).status_code == 202


def test_auth_enabled_without_keys_refuses_to_start(publisher: FakePublisher) -> None:
    with pytest.raises(SystemExit, match="no write key is configured"):
        create_app(make_settings(auth={"keys": {}}), publisher=publisher)


def test_an_empty_write_key_refuses_to_start(publisher: FakePublisher) -> None:
    with pytest.raises(SystemExit, match="empty write key"):
        create_app(make_settings(auth={"keys": {"web": ""}}), publisher=publisher)
