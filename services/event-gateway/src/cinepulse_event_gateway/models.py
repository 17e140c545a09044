"""Response bodies of the gateway (documented in the OpenAPI)."""

from __future__ import annotations

from collections import Counter
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str = Field(
        description="dotted path of the offending field, or 'body'", examples=["payload.rating"]
    )
    reason: str = Field(examples=["rating must be 0.5 to 5.0 in steps of 0.5"])
    type: str = Field(description="machine-readable error type", examples=["value_error"])


class ValidationFailed(BaseModel):
    detail: list[FieldError]


class Problem(BaseModel):
    detail: str


class Unavailable(BaseModel):
    detail: str
    event_id: UUID | None = Field(None, description="resend with this event_id")


class UserMismatch(BaseModel):
    """403: a frontend write key sent an event for another user than its user token's."""

    detail: str
    index: int = Field(
        ge=0, description="the first such event's position in the request (0 for /api/events)"
    )
    event_id: UUID | None = Field(None, description="its event_id, when the client sent one")
    field: Literal["user_id"] = Field("user_id", description="the field refused")


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_id: UUID = Field(description="the event's id (assigned when the client sent none)")


class BatchItem(BaseModel):
    index: int = Field(ge=0, description="position in the request array")
    status: Literal["accepted", "rejected", "unavailable"] = Field(
        description="accepted: Kafka acknowledged it; rejected: invalid, do not resend "
        "as is; unavailable: Kafka did not acknowledge it, resend with the same event_id (an "
        "event sent without one: resend the request with the same Idempotency-Key)"
    )
    event_id: UUID | None = None
    errors: list[FieldError] | None = None
    reason: str | None = None


class BatchResult(BaseModel):
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    unavailable: int = Field(ge=0)
    results: list[BatchItem]

    @classmethod
    def summarise(cls, results: list[BatchItem]) -> BatchResult:
        counts = Counter(r.status for r in results)
        return cls(
            accepted=counts["accepted"],
            rejected=counts["rejected"],
            unavailable=counts["unavailable"],
            results=results,
        )
