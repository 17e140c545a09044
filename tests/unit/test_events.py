from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import ValidationError

from cinepulse_common.events import EventType, RateEvent, normalise_comment_text, parse_event
from cinepulse_common.rules import load_rules
from tests.factories import event


@pytest.mark.parametrize("event_type", [t.value for t in EventType])
def test_valid_event_of_each_type_parses(event_type: str) -> None:
    e = parse_event(event(event_type))
    assert e.event_type == event_type
    assert e.kafka_key() == b"user-42"


def test_event_id_is_assigned_when_missing() -> None:
    data = event()
    del data["event_id"]
    a, b = parse_event(data), parse_event(data)
    assert isinstance(a.event_id, UUID) and a.event_id != b.event_id


def test_rating_is_a_json_number_on_the_wire() -> None:
    e = parse_event(event("rate", payload={"rating": 3.5}))
    assert json.loads(e.model_dump_json())["payload"]["rating"] == 3.5
    assert isinstance(e, RateEvent)


def _error(data: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as info:
        parse_event(data)
    err = info.value.errors()[0]
    return err["loc"], err["msg"]


@pytest.mark.parametrize(
    ("data", "loc_part", "msg_part"),
    [
        (event("rate", payload={"rating": 4.3}), "rating", "steps of 0.5"),
        (event("rate", payload={"rating": 0}), "rating", "0.5 to 5.0"),
        (event("rate", payload={"rating": "five"}), "rating", "decimal"),
        (
            event("watch", payload={"position_seconds": 9000, "duration_seconds": 5400}),
            "payload",
            "beyond duration_seconds",
        ),
        (
            event("watch", payload={"position_seconds": -1, "duration_seconds": 5400}),
            "position_seconds",
            "greater than or equal to 0",
        ),
        (event("comment", payload={"text": "   "}), "text", "1 to 5000"),
        (event("comment", payload={"text": "x" * 5001}), "text", "1 to 5000"),
        (event("click", payload={"target": "nuke"}), "target", "unknown click target"),
        (event(user_id="bad id with spaces"), "user_id", "must match"),
        (event(movie_id=0), "movie_id", "movie_id must be"),
        (
            event(occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
            "",
            "in the future",
        ),
        (event(occurred_at="2024-01-01T10:00:00"), "occurred_at", "timezone"),
        (event(event_type="dance"), "", "does not match any of the expected tags"),
        (event(unexpected="x"), "unexpected", "Extra inputs are not permitted"),
    ],
)
def test_invalid_events_name_field_and_reason(data: dict, loc_part: str, msg_part: str) -> None:
    loc, msg = _error(data)
    assert loc_part in ".".join(str(p) for p in loc)
    assert msg_part in msg


def test_missing_field_is_named() -> None:
    data = event()
    del data["user_id"]
    loc, msg = _error(data)
    assert loc[-1] == "user_id" and msg == "Field required"


def test_comment_of_5000_astral_characters_is_accepted() -> None:
    parse_event(event("comment", payload={"text": "🎬" * 5000}))


def test_click_alias_is_accepted() -> None:
    parse_event(event("click", payload={"target": "thumbnail"}))


def test_rules_passed_in_context_take_precedence() -> None:
    rules = load_rules()
    strict = rules.model_copy(update={"rating": rules.rating.model_copy(update={"step": 1})})
    with pytest.raises(ValidationError, match="steps of 1"):
        parse_event(event("rate", payload={"rating": 4.0}), rules=strict)
    parse_event(event("rate", payload={"rating": 4.0}))  # fine under the default rules


def test_comment_normalisation_uses_the_rules() -> None:
    rules = load_rules()
    assert normalise_comment_text("  e\u0301  tout   bon \n", rules) == "\u00e9 tout bon"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (event("comment", payload={"text": "nice\x00 film"}), "text"),
        (event("rate", session_id="s\x00"), "session_id"),
    ],
)
def test_a_nul_character_is_refused_where_postgresql_could_not_store_it(
    data: dict, loc: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event(data)
    (error,) = exc.value.errors()
    assert error["loc"][-1] == loc and "NUL" in error["msg"]
