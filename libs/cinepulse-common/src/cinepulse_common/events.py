"""The event envelope (ARCHITECTURE.md), as pydantic models.

``event_id`` is the idempotency key (assigned when the client sends none); ``event_type``
selects the payload model. Ranges and sets come from the transform rules, passed in the
validation context (``{"rules": TransformRules}``) or, by default, the active rules file, so
the gateway, Spark and the fallback all validate against the same numbers.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from cinepulse_common.rules import TransformRules


class EventType(StrEnum):
    WATCH = "watch"
    RATE = "rate"
    COMMENT = "comment"
    CLICK = "click"


def _rules(info: ValidationInfo) -> TransformRules:
    ctx = info.context or {}
    rules = ctx.get("rules") if isinstance(ctx, dict) else None
    if rules is not None:
        return rules  # type: ignore[no-any-return,unused-ignore]
    from cinepulse_common.rules import active_rules

    return active_rules()


def normalise_comment_text(text: str, rules: TransformRules) -> str:
    out = unicodedata.normalize(rules.comment.unicode_form, text).strip()
    if rules.comment.collapse_whitespace:
        out = re.sub(r"\s+", " ", out)
    return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchPayload(_Model):
    position_seconds: float = Field(ge=0, description="playback position reached, seconds")
    duration_seconds: float = Field(gt=0, description="length of the title, seconds")

    @model_validator(mode="after")
    def _position_within_duration(self, info: ValidationInfo) -> WatchPayload:
        rule = _rules(info).watch
        if self.duration_seconds > rule.max_duration_seconds:
            raise ValueError(
                f"duration_seconds {self.duration_seconds:g} exceeds {rule.max_duration_seconds}"
            )
        if self.position_seconds > self.duration_seconds + rule.position_tolerance_seconds:
            raise ValueError(
                f"position_seconds {self.position_seconds:g} is beyond duration_seconds "
                f"{self.duration_seconds:g} (+{rule.position_tolerance_seconds:g}s tolerance)"
            )
        return self


class RatePayload(_Model):
    # exact decimal for the step check; a JSON number on the wire
    rating: Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")] = Field(
        description="0.5 to 5.0 in steps of 0.5", examples=[4.5]
    )

    @field_validator("rating")
    @classmethod
    def _in_steps(cls, v: Decimal, info: ValidationInfo) -> Decimal:
        r = _rules(info).rating
        if not r.allows(v):
            raise ValueError(f"rating must be {r.min} to {r.max} in steps of {r.step}")
        return v


class CommentPayload(_Model):
    text: str = Field(description="comment text, any Unicode")

    @field_validator("text")
    @classmethod
    def _length(cls, v: str, info: ValidationInfo) -> str:
        rules = _rules(info)
        if "\x00" in v:  # PostgreSQL cannot store it (the transforms refuse it too)
            raise ValueError("contains a NUL character (U+0000)")
        n = len(normalise_comment_text(v, rules))
        if not rules.comment.min_length <= n <= rules.comment.max_length:
            raise ValueError(
                f"text must be {rules.comment.min_length} to {rules.comment.max_length} "
                f"characters after normalisation (got {n})"
            )
        return v


class ClickPayload(_Model):
    target: str = Field(description="what was clicked (a known target)", examples=["trailer"])

    @field_validator("target")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        rules = _rules(info)
        if v not in rules.click.targets and v not in rules.normalisation.click_target_aliases:
            raise ValueError(f"unknown click target {v!r}; known: {', '.join(rules.click.targets)}")
        return v


class _Envelope(_Model):
    event_id: UUID = Field(default_factory=uuid4, description="idempotency key")
    user_id: str = Field(min_length=1)
    movie_id: int = Field(description="TMDB movie id")
    occurred_at: AwareDatetime = Field(description="RFC 3339 with a UTC offset")
    session_id: str | None = Field(None, max_length=128)
    received_at: AwareDatetime | None = Field(None, description="stamped by the gateway")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, v: str, info: ValidationInfo) -> str:
        r = _rules(info).identifiers
        if len(v) > r.user_id_max_length:
            raise ValueError(f"user_id is longer than {r.user_id_max_length} characters")
        if not re.fullmatch(r.user_id_pattern, v):
            raise ValueError(f"user_id must match {r.user_id_pattern}")
        return v

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, v: str | None) -> str | None:
        if v is not None and "\x00" in v:  # PostgreSQL cannot store it
            raise ValueError("contains a NUL character (U+0000)")
        return v

    @field_validator("movie_id")
    @classmethod
    def _movie_id(cls, v: int, info: ValidationInfo) -> int:
        r = _rules(info).identifiers
        if not r.movie_id_min <= v <= r.movie_id_max:
            raise ValueError(f"movie_id must be {r.movie_id_min} to {r.movie_id_max}")
        return v

    @model_validator(mode="after")
    def _timing(self, info: ValidationInfo) -> _Envelope:
        t = _rules(info).time
        # the reference is the server's clock: the gateway passes its received_at in the
        # context; a client's own received_at never decides this check
        ctx = info.context if isinstance(info.context, dict) else {}
        reference = ctx.get("received_at") or self.received_at or datetime.now(UTC)
        if self.occurred_at > reference + timedelta(seconds=t.max_future_skew_seconds):
            raise ValueError(f"occurred_at is more than {t.max_future_skew_seconds}s in the future")
        if self.occurred_at < reference - timedelta(days=t.max_event_age_days):
            raise ValueError(f"occurred_at is more than {t.max_event_age_days} days old")
        return self

    def kafka_key(self) -> bytes:
        """Records are keyed by user id: per-user order within a partition."""
        return self.user_id.encode("utf-8")


class WatchEvent(_Envelope):
    event_type: Literal[EventType.WATCH]
    payload: WatchPayload


class RateEvent(_Envelope):
    event_type: Literal[EventType.RATE]
    payload: RatePayload


class CommentEvent(_Envelope):
    event_type: Literal[EventType.COMMENT]
    payload: CommentPayload


class ClickEvent(_Envelope):
    event_type: Literal[EventType.CLICK]
    payload: ClickPayload


Event = Annotated[
    WatchEvent | RateEvent | CommentEvent | ClickEvent, Field(discriminator="event_type")
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: Any, rules: TransformRules | None = None) -> Event:
    """Validate one envelope (a dict or JSON bytes); raises ``pydantic.ValidationError``."""
    context = {"rules": rules} if rules is not None else None
    if isinstance(data, bytes | str):
        return EVENT_ADAPTER.validate_json(data, context=context)
    return EVENT_ADAPTER.validate_python(data, context=context)
