"""Batches, and events Kafka did not acknowledge (503 naming what to resend)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from cinepulse_common.rules import load_rules
from cinepulse_event_gateway.app import create_app
from cinepulse_event_gateway.publisher import KafkaPublisher
from tests.factories import event
from tests.unit.gateway.fakes import (
    KEY,
    FakePublisher,
    make_client,
    make_settings,
    post,
    post_batch,
    sample,
)


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
    with make_client(publisher, limits={"max_batch_events": 3}) as c:
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
    with make_client(publisher, limits={"retry_after_s": 17}) as c:
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
