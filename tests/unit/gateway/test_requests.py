"""What is refused before validation: the write key (401), the content type (415), the size (413)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.factories import event
from tests.unit.gateway.fakes import KEY, FakePublisher, make_client


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
    with make_client(publisher, limits={"max_body_bytes": 1024}) as c:
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

    with make_client(publisher, limits={"max_body_bytes": 1024}) as c:
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
