"""A FastAPI app's OpenAPI document: whether it is served at all (:func:`docs_routes`), and
a service's own additions to it (security schemes, schemas FastAPI cannot infer), built
once and kept, as FastAPI keeps its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cinepulse_common.settings import CinepulseSettings

OpenApiEdit = Callable[[dict[str, Any]], None]


class DocsRoutes(TypedDict):
    """The keywords of :class:`fastapi.FastAPI` that place (or, ``None``, drop) its docs."""

    openapi_url: str | None
    docs_url: str | None
    redoc_url: str | None


def docs_routes(settings: CinepulseSettings) -> DocsRoutes:
    """``FastAPI(..., **docs_routes(settings))``: ``/openapi.json``, ``/docs`` and ``/redoc``
    when ``settings.docs_served`` (``CINEPULSE_DOCS_ENABLED``; unset: in development only),
    otherwise none of them (404). ``app.openapi()`` still builds the document either way,
    for tools that read it in process."""
    if settings.docs_served:
        return {"openapi_url": "/openapi.json", "docs_url": "/docs", "redoc_url": "/redoc"}
    return {"openapi_url": None, "docs_url": None, "redoc_url": None}


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
