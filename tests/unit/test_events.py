from __future__ import annotations

import json
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from cinepulse_common.events import (
    BIDI_CONTROLS,
    EventType,
    RateEvent,
    WatchEvent,
    normalise_comment_text,
    parse_event,
)
from cinepulse_common.rules import load_rules
from tests.factories import event, with_field


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
        (event("rate", payload={"rating": "five"}), "rating", "a JSON number, not a string"),
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


# --- strict validation ----------------------------------------------------------------------
#: the two ways an event is validated: a dict (the gateway parses the body first) or the JSON
#: text itself (pydantic's JSON mode, as the smoke test reads records)
MODES = ["python", "json"]


def _parse(data: dict[str, Any], mode: str) -> Any:
    return parse_event(json.dumps(data) if mode == "json" else data)


def _only_error(data: dict[str, Any], mode: str) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        _parse(data, mode)
    (error,) = info.value.errors()
    return dict(error)


def _field(error: dict[str, Any]) -> str:
    """The dotted field of an error, without the event type the union adds first."""
    return ".".join(str(p) for p in error["loc"][1:])


def test_the_rules_bound_the_past_to_400_days() -> None:
    assert load_rules().time.max_event_age_days == 400


@pytest.mark.parametrize("mode", MODES)
def test_an_event_older_than_400_days_is_refused(mode: str) -> None:
    now = datetime.now(UTC)
    _parse(event(occurred_at=(now - timedelta(days=399)).isoformat()), mode)
    error = _only_error(event(occurred_at=(now - timedelta(days=401)).isoformat()), mode)
    assert error["msg"] == "Value error, occurred_at is more than 400 days old"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "value", "kind", "got"),
    [
        ("movie_id", "42", "int_type", "a string"),
        ("movie_id", True, "int_type", "a boolean"),
        ("movie_id", False, "int_type", "a boolean"),
        ("payload.rating", "4.5", "decimal_type", "a string"),
        ("payload.rating", True, "decimal_type", "a boolean"),
        ("payload.position_seconds", "10", "float_type", "a string"),
        ("payload.position_seconds", True, "float_type", "a boolean"),
        ("payload.duration_seconds", "5400", "float_type", "a string"),
    ],
)
def test_a_string_or_a_boolean_is_no_number(
    mode: str, path: str, value: Any, kind: str, got: str
) -> None:
    base = event("rate") if path == "payload.rating" else event("watch")
    error = _only_error(with_field(base, path, value), mode)
    assert _field(error) == path
    assert error["type"] == kind
    assert error["msg"] == f"Input should be a JSON number, not {got}"


@pytest.mark.parametrize("mode", MODES)
def test_a_whole_float_is_no_movie_id(mode: str) -> None:
    error = _only_error(event(movie_id=603.0), mode)
    assert _field(error) == "movie_id" and error["type"] == "int_type"


@pytest.mark.parametrize("mode", MODES)
def test_json_numbers_are_still_accepted(mode: str) -> None:
    watch = _parse(event("watch", payload={"position_seconds": 10, "duration_seconds": 5400}), mode)
    assert isinstance(watch, WatchEvent) and watch.movie_id == 603
    assert watch.payload.position_seconds == 10.0
    assert isinstance(watch.payload.position_seconds, float)
    watch = _parse(
        event("watch", payload={"position_seconds": 1.5, "duration_seconds": 60.25}), mode
    )
    assert watch.payload.duration_seconds == 60.25
    for rating, exact in ((4.5, "4.5"), (4, "4"), (0.5, "0.5"), (5.0, "5.0")):
        rate = _parse(event("rate", payload={"rating": rating}), mode)
        assert isinstance(rate, RateEvent)
        assert rate.payload.rating == Decimal(exact)


def test_numbers_are_json_numbers_in_the_schema() -> None:
    schema = RateEvent.model_json_schema()
    rating = schema["$defs"]["RatePayload"]["properties"]["rating"]
    assert rating["type"] == "number" and "anyOf" not in rating
    assert schema["properties"]["movie_id"]["type"] == "integer"


NIL = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nil", [NIL, NIL.replace("-", "")])
def test_the_nil_uuid_is_no_event_id(mode: str, nil: str) -> None:
    error = _only_error(event(event_id=nil), mode)
    assert _field(error) == "event_id"
    assert error["msg"] == f"Value error, event_id must not be the nil UUID {NIL}"


def test_an_event_id_next_to_nil_is_accepted() -> None:
    almost = "00000000-0000-0000-0000-000000000001"
    assert str(parse_event(event(event_id=almost)).event_id) == almost


CONTROLS = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"]


def test_the_refused_characters_are_every_cc_and_the_bidi_controls() -> None:
    assert len(CONTROLS) == 65  # U+0000-U+001F, U+007F-U+009F
    assert sorted(BIDI_CONTROLS) == sorted(
        "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )


def _with_char(path: str, char: str) -> dict[str, Any]:
    """A valid event whose field at ``path`` has ``char`` inside it."""
    kinds = {"payload.target": "click", "payload.text": "comment"}
    values = {"user_id": "user", "session_id": "s-1", "payload.target": "trailer"}
    value = values.get(path, "a fine film")
    return with_field(event(kinds.get(path, "rate")), path, value[:2] + char + value[2:])


def _reason(char: str) -> str:
    if char == "\x00":  # Spark's and the fallback's wording, kept
        return "contains a NUL character (U+0000)"
    return f"contains a control character U+{ord(char):04X}"


@pytest.mark.parametrize("path", ["user_id", "session_id", "payload.target"])
def test_an_identifier_with_any_control_character_is_refused(path: str) -> None:
    for char in [*CONTROLS, *BIDI_CONTROLS]:
        error = _only_error(_with_char(path, char), "python")
        assert _field(error) == path
        assert error["msg"] == f"Value error, {_reason(char)}", (hex(ord(char)), error)


def test_a_comment_refuses_every_control_character_but_tab_and_line_feed() -> None:
    for char in [*CONTROLS, *BIDI_CONTROLS]:
        data = _with_char("payload.text", char)
        if char in "\t\n":
            parse_event(data)
            continue
        error = _only_error(data, "python")
        assert _field(error) == "payload.text"
        assert error["msg"] == f"Value error, {_reason(char)}", (hex(ord(char)), error)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "char", "code"),
    [
        ("user_id", "\u202e", "U+202E"),
        ("session_id", "\x1b", "U+001B"),
        ("payload.target", "\u200f", "U+200F"),
        ("payload.text", "\r", "U+000D"),
        ("payload.text", "\u2066", "U+2066"),
        ("payload.text", "\x85", "U+0085"),
    ],
)
def test_a_control_character_is_named_by_its_code_point(
    mode: str, path: str, char: str, code: str
) -> None:
    error = _only_error(_with_char(path, char), mode)
    assert _field(error) == path
    assert error["msg"] == f"Value error, contains a control character {code}"


@pytest.mark.parametrize("mode", MODES)
def test_text_and_identifiers_without_controls_are_accepted(mode: str) -> None:
    # right-to-left letters, zero-width space and joiner are text, not controls
    text = "Line one\n\tindented \u05e9\u05dc\u05d5\u05dd \u200b\u200d \U0001f3ac"
    session = "s-\u00e9t\u00e9-\u05e9"
    comment = _parse(event("comment", session_id=session, payload={"text": text}), mode)
    assert comment.payload.text == text
    assert comment.session_id == session
    click = _parse(event("click", user_id="critic@cine.example", payload={"target": "rec"}), mode)
    assert click.payload.target == "rec"
