"""The OpenAPI document and the docs routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cinepulse_event_gateway.app import create_app
from tests.unit.gateway.fakes import FakePublisher, make_client, make_settings, post


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

    # a frontend key sends its user token too; a server key only itself
    either: list[dict[str, list[str]]] = [{"WriteKey": [], "UserToken": []}, {"WriteKey": []}]
    assert spec["components"]["securitySchemes"]["UserToken"]["name"] == "X-User-Token"
    single = spec["paths"]["/api/events"]["post"]
    assert single["security"] == either
    content = single["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/Event"}
    assert set(content["examples"]) == {"watch", "rate", "comment", "click"}
    for code in ("202", "401", "403", "413", "415", "422", "429", "503"):
        assert code in single["responses"], code

    batch = spec["paths"]["/api/events/batch"]["post"]
    assert batch["security"] == either
    bcontent = batch["requestBody"]["content"]["application/json"]
    assert bcontent["schema"]["maxItems"] == 500
    assert bcontent["example"]
    for code in ("202", "401", "403", "413", "415", "422", "429", "503"):
        assert code in batch["responses"], code

    # the rate limit's answer headers, and Retry-After with a 429 and a 503
    rate = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    for op in (single, batch):
        for code in ("202", "403", "422", "429", "503"):
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
        with make_client(publisher, **overrides) as c:
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
    with make_client(publisher, auth={"enabled": False}) as c:
        spec = c.get("/openapi.json").json()
    assert "WriteKey" not in spec["components"].get("securitySchemes", {})
