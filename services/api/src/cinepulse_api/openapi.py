"""The answers each operation may give, as the OpenAPI document states them: 200's caching
and rate limit headers, 304, 422 and the error codes an operation names (with an example
each; 429, the rate limit's, from :mod:`cinepulse_common.read_limits`)."""

from __future__ import annotations

from typing import Any

from cinepulse_api.schemas import ErrorMessage, ValidationErrors
from cinepulse_common.ratelimit import HEADER_DOCS as RATE_LIMIT_HEADER_DOCS
from cinepulse_common.read_limits import too_many_requests_response

_HEADER_DOCS = {
    "ETag": {"description": "strong validator of the body", "schema": {"type": "string"}},
    "Cache-Control": {
        "description": "public (aggregates) or private (per-user), max-age in seconds",
        "schema": {"type": "string"},
    },
    **RATE_LIMIT_HEADER_DOCS,
}
_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "a credential is missing, unknown, malformed or expired (WWW-Authenticate names it)",
        "missing X-API-Key header",
    ),
    403: (
        "the caller's role does not allow this (another user's data)",
        "the X-User-Token is for another user; client 'web' (role frontend) may read only "
        "that user's data",
    ),
    404: ("what the request names does not exist", "unknown movie 99"),
    502: ("the archiver's answer made no sense", "the archiver's answer is not the expected JSON"),
    503: (
        "a dependency is down or too slow; retry after Retry-After seconds",
        "the database is unavailable (PoolTimeout); retry later",
    ),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the error ``codes`` alone (a router's include adds those
    every operation of it may give under these settings: 401 when a key is needed)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 429:  # the rate limit's, with its headers (shared with the recommender)
            out[code] = too_many_requests_response(ErrorMessage)
            continue
        description, example = _ERRORS[code]
        out[code] = {
            "model": ErrorMessage,
            "description": description,
            "content": {"application/json": {"example": {"detail": example}}},
        }
    return out


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a read operation: 200's headers, 304, 422 and ``codes``."""
    return {
        200: {"headers": _HEADER_DOCS},
        304: {"description": "Not modified: If-None-Match holds the current ETag (no body)"},
        422: {"model": ValidationErrors, "description": "a query or path parameter is invalid"},
        **error_responses(*codes),
    }
