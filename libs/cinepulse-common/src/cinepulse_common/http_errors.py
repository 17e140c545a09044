"""The 422 answer every read API gives for bad input: one entry per bad field,
``{"detail": [{"field": "k", "reason": "Input should be less than or equal to 100",
"type": "less_than_equal"}]}`` (the field without its ``query``/``path`` prefix), instead
of FastAPI's default shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


class FieldError(BaseModel):
    """One bad field of a refused request: its name, why, and pydantic's error type."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"field": "k", "reason": "Input should be less than or equal to 100", "type": "x"}
            ]
        }
    )
    field: str
    reason: str
    type: str


class ValidationErrors(BaseModel):
    """422: each bad query or path parameter, named (the body :func:`add_validation_handler`
    answers, documented with :data:`VALIDATION_RESPONSE`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "field": "k",
                            "reason": "Input should be less than or equal to 100",
                            "type": "less_than_equal",
                        }
                    ]
                }
            ]
        }
    )
    detail: list[FieldError]


#: the OpenAPI ``responses`` entry of the 422 every read API answers for bad input (without
#: it, FastAPI documents its own default shape, which these services never send)
VALIDATION_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrors, "description": "a query or path parameter is invalid"}
}


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header", "body"):
            loc = loc[1:]
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "request", "reason": reason, "type": err["type"]})
    return out


def add_validation_handler(app: FastAPI) -> None:
    """Answer a request that fails validation with 422 and :func:`field_errors`."""

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": field_errors(exc)}, status_code=422)
