"""A FastAPI app's OpenAPI document with a service's own additions (security schemes,
schemas FastAPI cannot infer), built once and kept, as FastAPI keeps its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OpenApiEdit = Callable[[dict[str, Any]], None]


def customise_openapi(app: FastAPI, *edits: OpenApiEdit) -> None:
    """Serve ``app``'s generated document after each of ``edits`` changed it in place."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for edit in edits:
                edit(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
