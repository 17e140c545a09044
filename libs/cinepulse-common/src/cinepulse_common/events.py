"""The event envelope (ARCHITECTURE.md), as pydantic models.

``event_id`` is the idempotency key (assigned when the client sends none); ``event_type``
selects the payload model. Ranges and sets come from the transform rules, passed in the
validation context (``{"rules": TransformRules}``) or, by default, the active rules file, so
the gateway, Spark and the fallback all validate against the same numbers.

Strict where a lenient reading would let one reader see another value than the next:

* numbers must be JSON numbers: ``"42"`` or ``true`` is no ``movie_id`` (pydantic's lax mode
  would turn them into 42 and 1); an integer is fine where a float is expected;
* the nil UUID is no ``event_id`` (a placeholder, not an id: downstream, every event sent
  with it would be a duplicate of the first);
* no control character (Unicode category Cc) in ``user_id``, ``session_id`` or a click
  target, none but tab and line feed in a comment, and no bidirectional formatting control
  (:data:`BIDI_CONTROLS`) in any of them: they hide or reorder what a reader of the data sees.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# EventType is part of the envelope's API (``from cinepulse_common.events import EventType``)
from cinepulse_common.event_types import EventType as EventType
from cinepulse_common.rules import TransformRules, active_rules


def _rules(info: ValidationInfo) -> TransformRules:
    ctx = info.context or {}
    rules = ctx.get("rules") if isinstance(ctx, dict) else None
    if rules is not None:
        return rules  # type: ignore[no-any-return,unused-ignore]
    return active_rules()


def normalise_comment_text(text: str, rules: TransformRules) -> str:
    out = unicodedata.normalize(rules.comment.unicode_form, text).strip()
    if rules.comment.collapse_whitespace:
        out = re.sub(r"\s+", " ", out)
    return out


#: bidirectional formatting controls (marks, embeddings, overrides, isolates): they reorder
#: how the text around them is displayed ("Trojan Source", CVE-2021-42574)
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: what an identifier (user_id, session_id, click target) must not contain: Unicode category
#: Cc (C0 controls, DEL, C1 controls) and the bidirectional controls
_ID_FORBIDDEN = re.compile(rf"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")
#: what a comment must not contain: the same, but tab and line feed are text
_TEXT_FORBIDDEN = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def _refuse_controls(value: str, forbidden: re.Pattern[str]) -> None:
    """A ``ValueError`` naming the first forbidden code point of ``value``, if any."""
    found = forbidden.search(value)
    if found is None:
        return
    if found.group() == "\x00":  # the wording Spark and the fallback quarantine it with
        raise ValueError("contains a NUL character (U+0000)")
    raise ValueError(f"contains a control character U+{ord(found.group()):04X}")


def _json_number(expected: str) -> BeforeValidator:
    """Refuses a string or a boolean before pydantic would coerce it to a number (its lax
    mode reads ``"42"`` as 42 and ``true`` as 1); the error keeps pydantic's type."""

    def check(value: Any) -> Any:
        if isinstance(value, bool | str | bytes | bytearray):
            got = "a boolean" if isinstance(value, bool) else "a string"
            raise PydanticCustomError(
                f"{expected}_type", f"Input should be a JSON number, not {got}"
            )
        return value

    return BeforeValidator(check)


#: an integer sent as a JSON integer (strict mode: not "42", not true, not 42.0)
JsonInt = Annotated[int, Strict(), _json_number("int")]
#: a float sent as a JSON number (strict mode: an integer is fine, "4.5" and true are not)
JsonFloat = Annotated[float, Strict(), _json_number("float")]
#: an exact decimal sent as a JSON number, and one on the wire. Not pydantic's strict mode:
#: a strict Decimal takes only Decimal instances from Python (a parsed JSON body holds a
#: float) and still takes strings from JSON; the check before it refuses strings and
#: booleans in both modes.
JsonDecimal = Annotated[
    Decimal,
    _json_number("decimal"),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number"}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchPayload(_Model):
    position_seconds: JsonFloat = Field(ge=0, description="playback position reached, seconds")
    duration_seconds: JsonFloat = Field(gt=0, description="length of the title, seconds")

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
    rating: JsonDecimal = Field(description="0.5 to 5.0 in steps of 0.5", examples=[4.5])

    @field_validator("rating")
    @classmethod
    def _in_steps(cls, v: Decimal, info: ValidationInfo) -> Decimal:
        r = _rules(info).rating
        if not r.allows(v):
            raise ValueError(f"rating must be {r.min} to {r.max} in steps of {r.step}")
        return v


class CommentPayload(_Model):
    text: str = Field(
        description="comment text, any Unicode but control characters (tab and line feed "
        "are fine) and bidirectional formatting controls"
    )

    @field_validator("text")
    @classmethod
    def _length(cls, v: str, info: ValidationInfo) -> str:
        rules = _rules(info)
        # NUL too: PostgreSQL cannot store it (the transforms refuse it as well)
        _refuse_controls(v, _TEXT_FORBIDDEN)
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
        _refuse_controls(v, _ID_FORBIDDEN)
        rules = _rules(info)
        if v not in rules.click.targets and v not in rules.normalisation.click_target_aliases:
            raise ValueError(f"unknown click target {v!r}; known: {', '.join(rules.click.targets)}")
        return v


class _Envelope(_Model):
    event_id: UUID = Field(default_factory=uuid4, description="idempotency key")
    user_id: str = Field(min_length=1)
    movie_id: JsonInt = Field(description="TMDB movie id")
    occurred_at: AwareDatetime = Field(description="RFC 3339 with a UTC offset")
    session_id: str | None = Field(None, max_length=128)
    received_at: AwareDatetime | None = Field(None, description="stamped by the gateway")

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, v: UUID) -> UUID:
        if v.int == 0:
            raise ValueError(f"event_id must not be the nil UUID {v}")
        return v

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, v: str, info: ValidationInfo) -> str:
        r = _rules(info).identifiers
        if len(v) > r.user_id_max_length:
            raise ValueError(f"user_id is longer than {r.user_id_max_length} characters")
        _refuse_controls(v, _ID_FORBIDDEN)
        if not re.fullmatch(r.user_id_pattern, v):
            raise ValueError(f"user_id must match {r.user_id_pattern}")
        return v

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, v: str | None) -> str | None:
        if v is not None:  # NUL too: PostgreSQL cannot store it
            _refuse_controls(v, _ID_FORBIDDEN)
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
