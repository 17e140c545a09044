"""Fuzzing the api's OpenAPI with schemathesis: the real app (uvicorn, in a thread of this
process) over a real, migrated PostgreSQL holding the data of ``test_api``; the archiver
behind /api/trending is a mock transport. Every GET operation, called as an internal client
(``X-API-Key``), must answer without a server error (5xx), with a documented status code,
content type and headers, and a body that conforms to the documented schema of that status
(the 422 and 404 bodies included), whatever the generated parameters.

The same fuzzing runs once per kind of caller (issue 20: keys of each role): an internal
client, a frontend client with a user token for one user (another user's data is 403), and
nobody (aggregates are public, per-user data is 401); schemathesis' ``ignored_auth`` check
probes every operation that declares a credential without it and with a wrong one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_headers_conformance

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.access import sign_user_token
from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import Stack
from tests.integration.fuzzing import FUZZ_CHECKS
from tests.integration.services import serve_in_thread
from tests.integration.test_api import INTERNAL_KEY, TEST_AUTH, TODAY, fill_warehouse

FRONTEND_KEY = "schema-frontend-key"
TOKEN_SECRET = "api-schema-fuzzing-user-token-secret-0123456789"
#: the internal client of test_api, a frontend client (not listed in roles), user tokens
AUTH: dict[str, Any] = {
    "keys": {**TEST_AUTH["keys"], "web": FRONTEND_KEY},
    "roles": TEST_AUTH["roles"],
    "user_token_secret": TOKEN_SECRET,
}

pytestmark = pytest.mark.integration
#: limits no fuzzing run reaches (a 429 is not what the fuzzing is about)
FUZZING_RATE_LIMIT = {"per_client": "1000000/minute", "anonymous": "1000000/minute"}


def _archiver(request: httpx.Request) -> httpx.Response:
    limit = int(request.url.params.get("limit", "10"))
    movies = [{"movie_id": 2, "events": 9}, {"movie_id": 99, "events": 4}]
    return httpx.Response(200, json={"minutes": 15, "movies": movies[:limit]})


@pytest.fixture(scope="module")
def api_url(stack: Stack, migrated_template: str) -> Iterator[str]:
    """The api serving a database of this module's own, on a free port."""
    name = f"t_schema_{uuid.uuid4().hex[:8]}"
    pg = PostgresSettings(dsn=stack.postgres.create_database(name, template=migrated_template))
    try:
        fill_warehouse(pg)
        app = create_app(
            # docs_enabled: the fuzzing reads /openapi.json
            ApiSettings(
                postgres=pg,
                log_json=False,
                auth=AUTH,
                docs_enabled=True,
                # counted (the X-RateLimit-* headers are checked against the document) but
                # never exhausted by the fuzzing, every caller from 127.0.0.1
                rate_limit=FUZZING_RATE_LIMIT,
            ),
            today=lambda: TODAY,
            archiver_transport=httpx.MockTransport(_archiver),
        )
        with serve_in_thread(app, "api-under-fuzzing") as url:
            yield url
    finally:
        stack.postgres.drop_database(name)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> Any:
    spec = schemathesis.openapi.from_url(api_url + "/openapi.json").include(method="GET")
    # valid and invalid parameters alike: the 422 bodies are checked against their schema too;
    # the credential is the test's own (an internal client), not generated
    spec.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], with_security_parameters=False
    )
    return spec


def _caller(role: str) -> dict[str, str]:
    if role == "internal":
        return {"X-API-Key": INTERNAL_KEY}
    if role == "frontend":  # the signed-in user "critic" (fill_warehouse's)
        return {"X-API-Key": FRONTEND_KEY, "X-User-Token": sign_user_token(TOKEN_SECRET, "critic")}
    return {}


def _fuzz(case: Any, api_url: str, role: str) -> None:
    case.call_and_validate(
        base_url=api_url,
        headers=_caller(role),
        checks=[*FUZZ_CHECKS, response_headers_conformance],
        timeout=10,
    )


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_api_conforms_to_its_schema(case: Any, api_url: str) -> None:
    _fuzz(case, api_url, "internal")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_api_as_a_frontend_client(case: Any, api_url: str) -> None:
    _fuzz(case, api_url, "frontend")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_api_without_a_key(case: Any, api_url: str) -> None:
    _fuzz(case, api_url, "anonymous")
