"""The OpenAPI document and the docs pages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.fakes import AUTH, make_client


def test_openapi_documents_every_answer_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("TopMovies", "Movie", "UserStats", "EmotionTrends", "Trending"):
        assert schemas[name]["examples"], name
    assert schemas["ErrorMessage"]["examples"] and schemas["ValidationErrors"]["examples"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 shape is not what we answer
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        answers = item["get"]["responses"]
        assert {"200", "304", "422", "429", "503"} <= set(answers), path
        assert answers["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationErrors"
        }
        rate_limit_headers = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
        assert set(answers["200"]["headers"]) == {"ETag", "Cache-Control", *rate_limit_headers}
        assert set(answers["429"]["headers"]) == {"Retry-After", *rate_limit_headers}
    user = spec["paths"]["/api/user_stats/{user_id}"]["get"]
    assert {"401", "403", "404"} <= set(user["responses"])
    assert user["security"] == [{"ApiKey": [], "UserToken": []}, {"ApiKey": []}]
    assert "security" not in spec["paths"]["/api/top_movies"]["get"]  # public
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert spec["components"]["securitySchemes"]["UserToken"]["name"] == "X-User-Token"


DOCS = ["/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", DOCS)
def test_docs_are_off_outside_development(path: str) -> None:
    for environment in ("production", "test"):
        with make_client(environment=environment) as c:
            assert c.get(path).status_code == 404, environment
            # the document is still built in process (for tools), only not served
            assert "/api/top_movies" in c.app.openapi()["paths"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", DOCS)
def test_docs_are_served_in_development_or_when_enabled(path: str) -> None:
    for overrides in (
        {"environment": "development"},
        {"environment": "production", "docs_enabled": True},
    ):
        with make_client(**overrides) as c:
            assert c.get(path).status_code == 200, overrides
    with make_client(environment="development", docs_enabled=False) as c:
        assert c.get(path).status_code == 404


def test_openapi_with_keyed_aggregates() -> None:
    with make_client(auth=AUTH | {"public_aggregates": False}) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/api/top_movies"]["get"]
    assert op["security"] == [{"ApiKey": []}]
    assert "401" in op["responses"]
