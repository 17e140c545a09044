"""The Idempotency-Key header: a resent request repeats the ids of events sent without one."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from cinepulse_event_gateway.idempotency import content_digest, derived_event_id
from tests.factories import event
from tests.unit.gateway.fakes import KEY, FakePublisher, post, post_batch


def _without_ids(n: int) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        e = event(user_id=f"u-{i}")
        del e["event_id"]
        out.append(e)
    return out


def _ids(r: object) -> list[str]:
    return [item["event_id"] for item in r.json()["results"]]  # type: ignore[attr-defined]


def test_a_batch_resent_with_the_same_key_gets_the_same_ids(
    client: TestClient, publisher: FakePublisher
) -> None:
    batch = _without_ids(3)
    kept = event(user_id="u-own")  # an event_id of the client's own is kept as is
    batch.append(kept)
    publisher.fail_keys = {b"u-1"}
    first = post_batch(client, batch, {"Idempotency-Key": "req-0001"})
    assert first.status_code == 503
    publisher.fail_keys = set()
    again = post_batch(client, batch, {"Idempotency-Key": "req-0001"})
    assert again.status_code == 202
    assert _ids(first) == _ids(again)
    assert _ids(again)[3] == kept["event_id"]
    # what Kafka got carries the same ids: the resent copies deduplicate downstream
    assert [json.loads(r.value)["event_id"] for r in publisher.published[4:]] == _ids(again)


def test_without_the_key_a_resend_gets_new_ids(client: TestClient) -> None:
    batch = _without_ids(2)
    assert set(_ids(post_batch(client, batch))).isdisjoint(_ids(post_batch(client, batch)))


def test_another_key_or_another_client_gets_other_ids(client: TestClient) -> None:
    batch = _without_ids(2)
    a = _ids(post_batch(client, batch, {"Idempotency-Key": "k-a"}))
    b = _ids(post_batch(client, batch, {"Idempotency-Key": "k-b"}))
    other_client = _ids(post_batch(client, batch, {"Idempotency-Key": "k-a", "X-Write-Key": "k2"}))
    assert len({*a, *b, *other_client}) == 6
    assert a == [str(derived_event_id("web", "k-a", content_digest(e))) for e in batch]
    assert UUID(a[0]).version == 5


def test_the_same_key_with_other_content_gets_other_ids(
    client: TestClient, publisher: FakePublisher
) -> None:
    """A reused key must not give a new event the id of an old one: the warehouse keeps the
    first row of an id, so the new event would be dropped after a 202."""
    first = _ids(post_batch(client, _without_ids(2), {"Idempotency-Key": "reused"}))
    other = _without_ids(2)
    for e in other:
        e["user_id"] = f"{e['user_id']}-b"
    second = _ids(post_batch(client, other, {"Idempotency-Key": "reused"}))
    assert len({*first, *second}) == 4
    # the single endpoint too: one field changed is another id
    [one] = _without_ids(1)
    changed = {**one, "session_id": "s-other"}
    r1 = post(client, one, {"Idempotency-Key": "single"})
    r2 = post(client, changed, {"Idempotency-Key": "single"})
    assert r1.json()["event_id"] != r2.json()["event_id"]


def test_a_resend_of_part_of_the_batch_keeps_each_events_id(client: TestClient) -> None:
    """Only the events a 503 left unacknowledged are resent: their indexes shift, their ids
    do not (and no other event's id lands on them)."""
    batch = _without_ids(4)
    first = _ids(post_batch(client, batch, {"Idempotency-Key": "part"}))
    again = _ids(post_batch(client, [batch[3], batch[1]], {"Idempotency-Key": "part"}))
    assert again == [first[3], first[1]]


def test_the_id_depends_on_the_content_not_its_spelling(client: TestClient) -> None:
    """Key order, white space and a client's own received_at (the server stamps its own) do
    not change the id: the digest is of the canonical JSON."""
    [data] = _without_ids(1)
    r1 = post(client, data, {"Idempotency-Key": "spelling"})
    reordered = dict(reversed(list(data.items())))
    body = json.dumps({**reordered, "received_at": "2020-01-01T00:00:00Z"}, indent=2)
    r2 = client.post(
        "/api/events",
        content=body.encode(),
        headers={**KEY, "Content-Type": "application/json", "Idempotency-Key": "spelling"},
    )
    assert r1.status_code == r2.status_code == 202, r2.text
    assert r1.json()["event_id"] == r2.json()["event_id"]


def test_identical_events_in_one_batch_get_one_id_each(client: TestClient) -> None:
    [data] = _without_ids(1)
    first = _ids(post_batch(client, [data, data, data], {"Idempotency-Key": "copies"}))
    assert len(set(first)) == 3
    assert _ids(post_batch(client, [data, data, data], {"Idempotency-Key": "copies"})) == first


def test_the_single_event_endpoint_takes_the_key_too(client: TestClient) -> None:
    [data] = _without_ids(1)
    r1 = post(client, data, {"Idempotency-Key": "one-event"})
    r2 = post(client, data, {"Idempotency-Key": "one-event"})
    assert r1.status_code == r2.status_code == 202
    assert r1.json()["event_id"] == r2.json()["event_id"]


@pytest.mark.parametrize(
    ("key", "type_"),
    [
        ("", "string_too_short"),
        ("x" * 129, "string_too_long"),
        ("has space", "string_pattern_mismatch"),
        ("a;b", "string_pattern_mismatch"),
    ],
)
def test_a_malformed_key_is_422_naming_the_header(
    client: TestClient, publisher: FakePublisher, key: str, type_: str
) -> None:
    r = post_batch(client, _without_ids(1), {"Idempotency-Key": key})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["field"] == "header.Idempotency-Key"
    assert error["type"] == type_
    assert error["reason"]
    assert publisher.published == []


def test_the_header_is_in_the_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/api/events", "/api/events/batch"):
        params = spec["paths"][path]["post"]["parameters"]
        [p] = [p for p in params if p["name"] == "Idempotency-Key"]
        assert p["in"] == "header"
        assert p["schema"]["maxLength"] == 128
