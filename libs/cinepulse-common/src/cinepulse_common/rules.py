"""``transform_rules.json``: the one place for business rules.

The models below are the source of truth for the file's shape; ``transform_rules.schema.json``
is generated from them (``make schemas``) for editors and external tools, and a unit test keeps
the two in step. Every consumer (gateway validation, Spark, the pandas fallback) reads rules
through :func:`load_rules` / :func:`active_rules` and never restates a value.

A malformed file is refused with :class:`RulesError`, whose message names each bad field
(``rating.step: Input should be greater than 0``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cinepulse_common.event_types import EventType

RULES_FILENAME = "transform_rules.json"
SCHEMA_FILENAME = "transform_rules.schema.json"


class RulesError(ValueError):
    """The rules file is missing, not JSON, or breaks the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventTypeRule(_Strict):
    topic: str = Field(min_length=1, description="Kafka topic the gateway routes this type to")
    fact_table: str = Field(pattern=r"^fact_[a-z_]+$", description="star-schema fact table")


#: the fields of a staged event that can tell two copies of one ``event_id`` apart
#: (``received_at`` is set by the gateway on every send: a resend differs there, always)
ContentField = Literal["event_type", "user_id", "movie_id", "occurred_at", "session_id", "payload"]


class DedupRule(_Strict):
    key: list[str] = Field(min_length=1, description="envelope fields that identify an event")
    keep: Literal["first", "last"] = Field(
        "first", description="which copy wins among duplicates, in Kafka (offset) order"
    )
    compare: list[ContentField] = Field(
        default=["event_type", "user_id", "movie_id", "occurred_at", "session_id", "payload"],
        min_length=1,
        description="the content of an event: a copy of a registered event_id that differs in "
        "any of these is quarantined (event_id_conflict, naming what differs); one equal in "
        "all of them is a resend and dropped silently. The registry spans every event type",
    )


class TimeRule(_Strict):
    max_future_skew_seconds: int = Field(
        ge=0, description="occurred_at may be at most this far after received_at"
    )
    late_data_tolerance_seconds: int = Field(
        ge=0, description="streaming watermark: events older than this behind the max are late"
    )
    max_event_age_days: int = Field(
        ge=1,
        description="a bounded past: occurred_at may be at most this many days before "
        "received_at; an older event is refused by the gateway (422) and quarantined by Spark "
        "and the fallback (occurred_at_too_old)",
    )


class IdentifierRule(_Strict):
    user_id_max_length: int = Field(ge=1, le=1024)
    user_id_pattern: str = Field(description="regular expression a user_id must match")
    movie_id_min: int = Field(ge=1)
    movie_id_max: int = Field(ge=1)


class RatingRule(_Strict):
    min: Decimal = Field(gt=0)
    max: Decimal = Field(gt=0)
    step: Decimal = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> RatingRule:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        if (self.max - self.min) % self.step != 0:
            raise ValueError("the range max - min must be a whole number of steps")
        return self

    def allows(self, value: float | Decimal) -> bool:
        d = Decimal(str(value))
        return self.min <= d <= self.max and (d - self.min) % self.step == 0


class WatchRule(_Strict):
    max_duration_seconds: int = Field(ge=1)
    position_tolerance_seconds: float = Field(
        ge=0, description="position may exceed duration by this much (player rounding)"
    )
    completed_ratio: float = Field(
        gt=0, le=1, description="completion ratio from which a watch counts as completed"
    )


class CommentRule(_Strict):
    min_length: int = Field(ge=1)
    max_length: int = Field(ge=1)
    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"]
    collapse_whitespace: bool

    @model_validator(mode="after")
    def _consistent(self) -> CommentRule:
        if self.min_length > self.max_length:
            raise ValueError("min_length must not exceed max_length")
        return self


class ClickRule(_Strict):
    targets: list[str] = Field(min_length=1, description="the known click targets")


class NormalisationRule(_Strict):
    event_type_aliases: dict[str, EventType] = Field(
        default_factory=dict, description="legacy or frontend spellings -> event_type"
    )
    click_target_aliases: dict[str, str] = Field(default_factory=dict)
    genre_aliases: dict[str, str] = Field(
        default_factory=dict, description="genre spellings -> canonical TMDB genre name"
    )


class TransformRules(_Strict):
    schema_: str | None = Field(None, alias="$schema")
    version: int = Field(ge=1)
    event_types: dict[EventType, EventTypeRule]
    dedup: DedupRule
    time: TimeRule
    identifiers: IdentifierRule
    rating: RatingRule
    watch: WatchRule
    comment: CommentRule
    click: ClickRule
    normalisation: NormalisationRule

    @model_validator(mode="after")
    def _cross_field(self) -> TransformRules:
        missing = set(EventType) - set(self.event_types)
        if missing:
            raise ValueError(f"event_types lacks {sorted(m.value for m in missing)}")
        unknown = {
            alias: target
            for alias, target in self.normalisation.click_target_aliases.items()
            if target not in self.click.targets
        }
        if unknown:
            raise ValueError(
                f"normalisation.click_target_aliases point to unknown targets {unknown}"
            )
        return self

    def topic_for(self, event_type: EventType | str) -> str:
        return self.event_types[EventType(event_type)].topic


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid transform rules:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)


def parse_rules(text: str, source: str = RULES_FILENAME) -> TransformRules:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    try:
        return TransformRules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_format_errors(source, exc)) from None


def default_rules_text() -> str:
    return resources.files("cinepulse_common").joinpath(RULES_FILENAME).read_text("utf-8")


def load_rules(path: Path | str | None = None) -> TransformRules:
    """Load and validate a rules file; ``None`` means the copy shipped with this package."""
    if path is None:
        return parse_rules(default_rules_text(), f"<package>/{RULES_FILENAME}")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise RulesError(f"{p}: cannot read transform rules: {exc.strerror}") from None
    return parse_rules(text, str(p))


class RulesSettings(BaseSettings):
    """Where the active rules come from: ``CINEPULSE_RULES_PATH`` (a mounted ConfigMap in the
    cluster), else the packaged default."""

    model_config = SettingsConfigDict(env_prefix="CINEPULSE_", extra="ignore")
    rules_path: Path | None = None


@lru_cache(maxsize=1)
def active_rules() -> TransformRules:
    return load_rules(RulesSettings().rules_path)


def json_schema() -> dict[str, object]:
    schema = TransformRules.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Cinepulse transform rules"
    return schema


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
