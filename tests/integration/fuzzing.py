"""The schemathesis checks every fuzzing of a service's OpenAPI applies (the api, the
recommender, the gateway): no server error, answers as documented, invalid input refused,
and ``ignored_auth`` (an operation declaring a credential refuses a request without it or
with a wrong one)."""

from __future__ import annotations

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
