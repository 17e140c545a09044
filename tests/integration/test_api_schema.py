"""Fuzzing the api's OpenAPI with schemathesis: the real app (uvicorn, in a thread of this
process) over a real, migrated PostgreSQL holding the data of ``test_api``; the archiver
behind /api/trending is a mock transport. Every GET operation, called as an internal client
(``X-API-Key``), must answer without a server error (5xx), with a documented status code,
content type and headers, and a body that conforms to the documented schema of that status
(the 422 and 404 bodies included), whatever the generated parameters."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cinepulse_api.app import create_app
from cinepulse_api.settings import ApiSettings
from cinepulse_common.settings import PostgresSettings
from cinepulse_devstack import Stack
from tests.integration.services import free_port
from tests.integration.test_api import INTERNAL_KEY, TEST_AUTH, TODAY, fill_warehouse

pytestmark = pytest.mark.integration


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
            ApiSettings(postgres=pg, log_json=False, auth=TEST_AUTH, docs_enabled=True),
            today=lambda: TODAY,
            archiver_transport=httpx.MockTransport(_archiver),
        )
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="api-under-fuzzing", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the api did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)
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


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_api_conforms_to_its_schema(case: Any, api_url: str) -> None:
    case.call_and_validate(
        base_url=api_url,
        headers={"X-API-Key": INTERNAL_KEY},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        timeout=10,
    )
