"""CORS: a browser's preflight from an allowed origin, none without origins."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import event
from tests.unit.gateway.fakes import FakePublisher, make_client, post


def test_cors_preflight_from_an_allowed_origin(publisher: FakePublisher) -> None:
    with make_client(publisher, cors_origins=["https://app.example"]) as c:
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
