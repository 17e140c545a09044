"""The pandas fallback's transforms, alone (no services): Spark's semantics where they differ
from Python's, one check at a time, and the same function names in the same order as the
Spark job's ``transform_events``."""

from __future__ import annotations

import ast
import inspect
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from cinepulse_common.rules import active_rules
from cinepulse_common.validation import (
    EVENT_CHECKS,
    event_reasons,
    rule_code,
    source_event_id,
)
from cinepulse_common.warehouse import EVENT_COLUMNS, QUARANTINE_COLUMNS
from cinepulse_pandas_fallback import job
from cinepulse_pandas_fallback.checks import _checks, split_valid, validate_events
from cinepulse_pandas_fallback.spark_json import (
    _java_double,
    as_decimal,
    as_double,
    as_long,
    as_string,
)
from cinepulse_pandas_fallback.spark_time import date_key, timestamp_us
from cinepulse_pandas_fallback.transforms import (
    assign_event_ids,
    deduplicate_events,
    label_comments,
    model_events,
    normalise_event_types,
    normalise_events,
    parse_events,
)
from tests.factories import event, with_field

RULES = active_rules()
REASONS = event_reasons(RULES)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _docs(*records: Any, topic: str = "t.user_rating_log") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "topic": [topic] * len(records),
            "partition": [0] * len(records),
            "offset": list(range(len(records))),
            "record": list(records),
        }
    )


def _valid(kind: str = "rate", **overrides: Any) -> dict[str, Any]:
    occurred = NOW - timedelta(minutes=1)
    data = event(kind, occurred_at=occurred.isoformat(), received_at=NOW.isoformat())
    data.update(overrides)
    return data


def _reasons(*records: Any) -> list[str | None]:
    validated = validate_events(
        normalise_event_types(assign_event_ids(parse_events(_docs(*records))), RULES), RULES, NOW
    )
    return validated["quarantine_reason"].tolist()


# -- reading JSON values as Spark's from_json does ------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (1e-4, "1.0E-4"),
        (0.001, "0.001"),
        (123456.789, "123456.789"),
        (1e21, "1.0E21"),
        (0.30000000000000004, "0.30000000000000004"),
        (100.0, "100.0"),
        (-5e-5, "-5.0E-5"),
        (-0.0, "-0.0"),
        (1.23e-18, "1.23E-18"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
    ],
)
def test_doubles_are_written_as_java_writes_them(value: float, text: str) -> None:
    assert _java_double(value) == text


def test_each_field_is_read_as_its_spark_type() -> None:
    assert as_string(42) == "42" and as_string(True) == "true" and as_string(4.2) == "4.2"
    assert as_string({"a": "x\ny\u0001\U0001f3ac", "b": [1, 2.0, None]}) == (
        '{"a":"x\\ny\\u0001\\uD83C\\uDFAC","b":[1,2.0,null]}'
    )
    assert as_string(math.nan) == '"NaN"'
    assert as_long(603) == 603 and as_long(603.0) is None and as_long("603") is None
    assert as_long(True) is None and as_long(2**63) is None
    assert as_double(12) == 12.0 and as_double("12") is None and as_double(True) is None
    assert math.isnan(as_double("NaN")) and as_double("+INF") == math.inf
    assert as_double("-Infinity") == -math.inf and as_double("Inf") is None
    assert as_decimal(4.5) == Decimal("4.5") and as_decimal(5) == Decimal(5)
    for text, value in [("4.5", "4.5"), ("+3.5", "3.5"), (".5", "0.5"), ("5.", "5")]:
        assert as_decimal(text) == Decimal(value)
    assert as_decimal("4,5") == Decimal(45)  # Spark's en-US parser drops grouping commas
    assert as_decimal("\u0664.\u0665") == Decimal("4.5")  # any Unicode digits, as Java's
    for bad in (" 4.5", "1_0", "NaN", "Infinity", "0x10", "", True, math.inf, 1e50, [4.5]):
        assert as_decimal(bad) is None, bad


def test_parse_events_keeps_the_position_and_the_record_as_json_text() -> None:
    record = _valid("watch", user_id=42, payload={"position_seconds": 60, "duration_seconds": "x"})
    parsed = parse_events(_docs(record, [1, 2]))
    first = parsed.iloc[0]
    assert (first["topic"], first["partition"], first["offset"]) == ("t.user_rating_log", 0, 0)
    assert json.loads(first["raw"]) == record and first["user_id"] == "42"
    assert first["payload"]["position_seconds"] == 60.0
    assert first["payload"]["duration_seconds"] is None  # this field only
    second = parsed.iloc[1]
    assert second["raw"] == "[1,2]" and second["event_type"] is None


def test_assign_event_ids_derives_missing_ids_from_the_position_and_lowercases() -> None:
    upper = _valid()
    upper["event_id"] = upper["event_id"].upper()
    missing = with_field(_valid(), "event_id", ...)
    ids = assign_event_ids(parse_events(_docs(upper, missing)))["event_id"].tolist()
    assert ids == [upper["event_id"].lower(), source_event_id("t.user_rating_log", 0, 1)]


def test_normalise_event_types_maps_the_legacy_spellings() -> None:
    parsed = parse_events(
        _docs(*(_valid(event_type=t) for t in ("view", "rating", "review", "rate")))
    )
    assert normalise_event_types(parsed, RULES)["event_type"].tolist() == [
        "watch",
        "rate",
        "comment",
        "rate",
    ]


# -- validation --------------------------------------------------------------------------------
def test_every_check_is_implemented_once_in_the_catalogue_order() -> None:
    checks = _checks(parse_events(_docs(_valid())), RULES, 0)
    assert list(checks) == list(EVENT_CHECKS) == list(REASONS)


BREACHES: dict[str, Any] = {
    "missing_event_type": with_field(_valid(), "event_type", ...),
    "unknown_event_type": _valid(event_type="dance"),
    "unknown_field": _valid(coupon="FREE"),
    "unknown_payload_field": with_field(_valid(), "payload.text", "hi"),
    "event_id_not_uuid": _valid(event_id="nope"),
    "user_id_missing": with_field(_valid(), "user_id", ...),
    "user_id_too_long": _valid(user_id="u" * 129),
    "user_id_pattern": _valid(user_id="user-1\n"),
    "session_id_too_long": _valid(session_id="s" * 129),
    "session_id_nul": _valid(session_id="s\x00"),
    "movie_id_missing": _valid(movie_id="603"),
    "movie_id_range": _valid(movie_id=0),
    "occurred_at_format": _valid(occurred_at="2026-02-30T10:00:00Z"),
    "received_at_format": _valid(received_at="yesterday"),
    "occurred_at_future": _valid(occurred_at=(NOW + timedelta(minutes=6)).isoformat()),
    "occurred_at_too_old": _valid(occurred_at="1900-01-01T00:00:00Z"),
    "payload_missing": _valid(payload="x"),
    "watch_fields_required": _valid("watch", payload={"position_seconds": 1}),
    "position_negative": _valid("watch", payload={"position_seconds": -1, "duration_seconds": 9}),
    "duration_not_positive": _valid(
        "watch", payload={"position_seconds": 0, "duration_seconds": 0}
    ),
    "duration_too_long": _valid(
        "watch", payload={"position_seconds": 1, "duration_seconds": 90000}
    ),
    "position_beyond_duration": _valid(
        "watch", payload={"position_seconds": 66, "duration_seconds": 60}
    ),
    "rating_required": _valid(payload={"rating": "abc"}),
    "rating_range": _valid(payload={"rating": 4.3}),
    "text_required": _valid("comment", payload={}),
    "text_nul": _valid("comment", payload={"text": "nice\x00 film"}),
    "text_length": _valid("comment", payload={"text": " \t "}),
    "target_required": _valid("click", payload={}),
    "target_unknown": _valid("click", payload={"target": "buy"}),
}


@pytest.mark.parametrize("check", list(BREACHES))
def test_each_check_quarantines_with_its_reason(check: str) -> None:
    reason = REASONS[check] + ("dance" if check == "unknown_event_type" else "")
    assert _reasons(BREACHES[check]) == [reason]
    assert rule_code(reason)


def test_the_catalogue_is_covered_and_valid_events_pass() -> None:
    assert set(BREACHES) | {"not_object"} == set(EVENT_CHECKS)
    assert _reasons(*(_valid(t) for t in ("watch", "rate", "comment", "click"))) == [None] * 4


def test_the_first_broken_rule_wins() -> None:
    both = with_field(_valid(movie_id=0), "user_id", ...)
    assert _reasons(both) == [REASONS["user_id_missing"]]


def test_what_is_not_strict_json_is_not_a_json_object() -> None:
    nan = _valid(payload={"rating": math.nan})
    assert _reasons([1, 2], "text", nan) == [REASONS["not_object"]] * 3


def test_spark_corners_of_the_checks() -> None:
    # NaN sorts above every number (Spark), so it is "beyond" and "too long", never negative
    nan_pos = _valid("watch", payload={"position_seconds": "NaN", "duration_seconds": 60})
    nan_dur = _valid("watch", payload={"position_seconds": 1, "duration_seconds": "NaN"})
    minus_inf = _valid("watch", payload={"position_seconds": "-INF", "duration_seconds": 60})
    # a payload that is a string of JSON: its keys are checked (get_json_object)
    string_payload = _valid(payload='{"x": 1}')
    # the regex admits these, but they are no instant
    no_instants = [
        _valid(occurred_at=t) for t in ("2026-06-01t10:00:00Z", "2026-06-01T10:00:00+18:01")
    ]
    assert _reasons(nan_pos, nan_dur, minus_inf, string_payload, *no_instants) == [
        REASONS["position_beyond_duration"],
        REASONS["duration_too_long"],
        REASONS["position_negative"],
        REASONS["unknown_payload_field"],
        REASONS["occurred_at_format"],
        REASONS["occurred_at_format"],
    ]
    # no received_at: the reference is now
    assert _reasons(with_field(_valid(), "received_at", ...)) == [None]


def test_split_valid() -> None:
    validated = validate_events(
        assign_event_ids(parse_events(_docs(_valid(), _valid(movie_id=0)))), RULES, NOW
    )
    valid, held = split_valid(validated)
    assert len(valid) == 1 and len(held) == 1 and held["quarantine_rule"].iat[0] == "movie_id"


def test_deduplicate_keeps_the_first_exact_copy_by_kafka_position() -> None:
    first = _valid()
    resend = with_field(first, "received_at", "2026-11-26T11:59:59Z")  # set by the server
    parsed = parse_events(_docs(resend, first))
    parsed["offset"] = [9, 3]
    kept = deduplicate_events(parsed, RULES)
    assert kept["offset"].tolist() == [3]
    last = RULES.model_copy(update={"dedup": RULES.dedup.model_copy(update={"keep": "last"})})
    assert deduplicate_events(parsed, last)["offset"].tolist() == [9]


def test_deduplicate_keeps_copies_with_other_content_for_the_registry() -> None:
    """Same id, other rating or other type: both reach the load, whose event-id registry
    makes a fact of the first and quarantines the other (event_id_conflict)."""
    first = _valid()
    rerated = with_field(first, "payload.rating", 1.0)
    retyped = {**first, "event_type": "click", "payload": {"target": "poster"}}
    parsed = parse_events(_docs(first, rerated, retyped, rerated, first))
    kept = deduplicate_events(parsed, RULES)
    # an exact copy of the first is dropped; a copy of another copy is not (the registry
    # quarantines it too: it differs from the fact)
    assert kept["offset"].tolist() == [0, 1, 2, 3]
    assert set(kept["event_id"]) == {first["event_id"]}


# -- normalisation -----------------------------------------------------------------------------
def _normalised(*records: Any) -> pd.DataFrame:
    validated = validate_events(
        normalise_event_types(assign_event_ids(parse_events(_docs(*records))), RULES), RULES, NOW
    )
    valid, held = split_valid(validated)
    assert held.empty, held["quarantine_reason"].tolist()
    return normalise_events(valid, RULES)


@pytest.mark.parametrize(
    ("position", "duration", "expected"),
    [
        (4861.235, 5400, ("4861.24", "5400.00", "0.9002", True)),
        (
            2.675,
            100,
            ("2.68", "100.00", "0.0268", False),
        ),  # the double is 2.67499..., Spark says 2.68
        (0.005, 1, ("0.01", "1.00", "0.0100", False)),
        (4859.73, 5400, ("4859.73", "5400.00", "0.9000", True)),  # 0.89995 rounds up: completed
        (5404, 5400, ("5404.00", "5400.00", "1.0000", True)),  # within the tolerance: capped
        (1, 3, ("1.00", "3.00", "0.3333", False)),
    ],
)
def test_watch_decimals_round_half_up_like_spark(
    position: float, duration: float, expected: tuple[str, str, str, bool]
) -> None:
    row = _normalised(
        _valid("watch", payload={"position_seconds": position, "duration_seconds": duration})
    ).iloc[0]
    got = (
        str(row["position_seconds"]),
        str(row["duration_seconds"]),
        str(row["completion_ratio"]),
        row["completed"],
    )
    assert got == expected


def test_timestamps_date_keys_texts_targets_ratings_and_lateness() -> None:
    rows = _normalised(
        _valid(
            occurred_at="2026-01-01T01:00:00.123456789+05:30", received_at="2025-12-31T19:31:00Z"
        ),
        _valid(occurred_at="2026-01-01T10:00:00Z", received_at="2026-01-01T11:00:01Z"),
        _valid("comment", payload={"text": "  e\u0301le\u0301gant\n\n film "}),
        _valid("click", payload={"target": "thumbnail"}),
        _valid(payload={"rating": "4.5"}),
    )
    first = rows.iloc[0]
    assert first["occurred_ts"] == datetime(2025, 12, 31, 19, 30, 0, 123456, tzinfo=UTC)
    assert first["date_key"] == 20251231 and not first["is_late"]
    assert rows.iloc[1]["is_late"]  # arrived 1 h 1 s after: beyond the tolerance
    assert rows.iloc[2]["comment_text"] == "\u00e9l\u00e9gant film"
    assert rows.iloc[3]["target"] == "poster"
    assert rows.iloc[4]["rating"] == Decimal("4.5")
    assert rows.iloc[0]["rating"] == Decimal("4.5")


def test_timestamps_on_the_proleptic_calendar() -> None:
    assert timestamp_us("1970-01-01T00:00:00Z") == 0
    assert timestamp_us("1969-12-31T23:59:59.9999999Z") == -1  # truncated, not rounded
    assert timestamp_us("0000-01-01T00:00:00Z") == -62167219200000000  # as Spark
    assert timestamp_us("2026-01-01T00:00:00-18:00") == 1767290400000000
    assert timestamp_us("1900-02-29T00:00:00Z") is None and timestamp_us("2000-02-29T00:00:00Z")
    assert date_key(-62167219200000000) == 101
    assert date_key(timestamp_us("2024-02-29T23:59:59+00:00")) == 20240229


def test_label_comments_uses_the_shared_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    import cinepulse_emotion as emotion

    seen: list[list[str]] = []

    def classify(texts: list[str]) -> list[Any]:
        seen.append(texts)
        return [emotion.Emotion("joy", 0.5, {"joy": 0.9}, "v-test") for _ in texts]

    monkeypatch.setattr(emotion, "classify_comments", classify)
    rows = label_comments(
        _normalised(_valid("comment", payload={"text": "Loved it"}), _valid("rate"))
    )
    assert seen == [["Loved it"]]
    assert rows["emotion"].tolist() == ["joy", None]
    assert rows["emotion_scores"].iat[0] == '{"joy": 0.9}' and rows["sentiment"].iat[1] is None


def test_model_events_and_the_quarantine_are_in_the_load_steps_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cinepulse_emotion as emotion

    monkeypatch.setattr(
        emotion,
        "classify_comments",
        lambda texts: [emotion.Emotion("neutral", 0.0, {}, "v") for _ in texts],
    )
    bad_id = _valid(event_id="0b0f2a6e6-a1c-4c1f-9d8e-1a2b3c4d5e6f")  # 36 characters, no UUID
    modelled, held = job.transform_events(
        _docs(_valid("comment"), _valid(movie_id=0), bad_id), RULES, NOW
    )
    rows = model_events(modelled, "is_late")
    assert list(rows.columns) == [*EVENT_COLUMNS, "is_late"]
    assert json.loads(rows["payload"].iat[0]) == {"text": "Loved every minute of it ❤️"}
    assert rows["occurred_at"].iat[0].tzinfo is not None
    quarantined = job.quarantine_rows(held)
    assert list(quarantined.columns) == list(QUARANTINE_COLUMNS)
    assert quarantined["rule"].tolist() == ["movie_id", "event_id"]
    assert quarantined["event_id"].iat[1] is None and quarantined["event_id"].iat[0] is not None


def test_the_same_functions_in_the_same_order_as_spark() -> None:
    """Spark's ``transform_events`` and ours call the same transforms, nested the same way
    (ours also parses: Spark's stream parses before it calls ``transform_events``)."""
    pytest.importorskip("pyspark")
    from cinepulse_spark_jobs import stream

    def calls(fn: Any) -> list[str]:
        tree = ast.parse(inspect.getsource(fn))
        return [
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.islower()
        ]

    ours = [c for c in calls(job.transform_events) if c != "parse_events"]
    assert ours == calls(stream.transform_events)
    assert "parse_events" in calls(job.transform_events)
