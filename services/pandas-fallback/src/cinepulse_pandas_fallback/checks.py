"""Validation as Spark's job does it: each check of
:data:`cinepulse_common.validation.EVENT_CHECKS` per row, in the same order and with the same
wording, with Spark's semantics (``NaN`` in comparisons is larger than any number and equal to
itself; a record with ``NaN``/``Infinity`` is not strict JSON)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import localcontext
from typing import Any

import pandas as pd

from cinepulse_common.events import normalise_comment_text
from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import (
    ENVELOPE_FIELDS,
    EVENT_CHECKS,
    NUL,
    PAYLOAD_FIELDS,
    REASON_WITH_VALUE,
    RFC3339_PATTERN,
    SESSION_ID_MAX,
    UUID_PATTERN,
    event_reasons,
    rule_code,
)
from cinepulse_pandas_fallback.spark_json import PAYLOAD_READERS
from cinepulse_pandas_fallback.spark_time import EPOCH, US_PER_DAY, US_PER_S, timestamp_us


def full_match(pattern: str) -> Callable[[str], bool]:
    """The whole value matches (Java's classes: ``\\d`` is ASCII)."""
    compiled = re.compile(pattern, re.ASCII)
    return lambda s: compiled.fullmatch(s) is not None


def _spark_gt(a: float, b: float) -> bool:
    """``a > b`` in Spark's order of doubles: NaN is above everything, and equals NaN."""
    a_nan, b_nan = math.isnan(a), math.isnan(b)
    if a_nan or b_nan:
        return a_nan and not b_nan
    return a > b


def _strict_object(raw: str) -> dict[str, Any] | None:
    """``raw`` parsed if it is a JSON object in strict JSON (no NaN/Infinity), else None:
    Spark's ``json_object_keys`` is null for anything else."""

    def refuse(token: str) -> Any:
        raise ValueError(token)

    try:
        value = json.loads(raw, parse_constant=refuse)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _payload_keys(record: dict[str, Any] | None) -> set[str] | None:
    """``json_object_keys(get_json_object(raw, '$.payload'))``: the payload's keys; a string
    payload is read as the JSON text it holds."""
    if record is None:
        return None
    payload = record.get("payload")
    if isinstance(payload, str):
        payload = _strict_object(payload)
    return set(payload) if isinstance(payload, dict) else None


def _checks(
    events: pd.DataFrame, rules: TransformRules, now_us: int
) -> dict[str, list[bool | None]]:
    """Each check of :data:`cinepulse_common.validation.EVENT_CHECKS`: per row, True when the
    row breaks it (None: unknown, as SQL's null; it does not break it)."""
    ids, t, r, w, c = rules.identifiers, rules.time, rules.rating, rules.watch, rules.comment
    types = {str(e) for e in rules.event_types}
    targets = set(rules.click.targets) | set(rules.normalisation.click_target_aliases)
    is_uuid = full_match(UUID_PATTERN)
    is_rfc3339 = full_match(RFC3339_PATTERN)
    user_ok = full_match(ids.user_id_pattern)

    n = len(events)
    records = [_strict_object(raw) for raw in events["raw"]]
    etype = events["event_type"].tolist()
    event_id = events["event_id"].tolist()
    user = events["user_id"].tolist()
    session = events["session_id"].tolist()
    movie = events["movie_id"].tolist()
    occurred_at = events["occurred_at"].tolist()
    received_at = events["received_at"].tolist()
    payload = events["payload"].tolist()
    # Any: each check tests for None itself before it compares
    occurred: list[Any] = [timestamp_us(x) for x in occurred_at]
    received: list[Any] = [timestamp_us(x) for x in received_at]
    reference = [x if x is not None else now_us for x in received]
    field: dict[str, list[Any]] = {
        name: [p.get(name) if p is not None else None for p in payload] for name in PAYLOAD_READERS
    }
    pos, dur, rating = field["position_seconds"], field["duration_seconds"], field["rating"]
    text, target = field["text"], field["target"]
    text_len: list[Any] = [
        len(normalise_comment_text(x, rules)) if x is not None else None for x in text
    ]
    skew_us = t.max_future_skew_seconds * US_PER_S
    age_us = t.max_event_age_days * US_PER_DAY
    tolerance = w.position_tolerance_seconds

    def each(test: Callable[[int], bool | None]) -> list[bool | None]:
        return [test(i) for i in range(n)]

    def of_type(name: str, test: Callable[[int], bool | None]) -> list[bool | None]:
        # Spark's ``event_type == name AND test``: false for another type, whatever test says
        return each(lambda i: test(i) if etype[i] == name else False)

    def rating_breaks(i: int) -> bool:
        with localcontext() as ctx:
            ctx.prec = 100
            v = rating[i]
            return bool(v < r.min or v > r.max or v % r.step != 0)

    allowed = {k: set(v) for k, v in PAYLOAD_FIELDS.items()}
    envelope = set(ENVELOPE_FIELDS)
    return {
        "not_object": [x is None for x in records],
        "missing_event_type": [x is None for x in etype],
        "unknown_event_type": [None if x is None else x not in types for x in etype],
        "unknown_field": [None if x is None else bool(set(x) - envelope) for x in records],
        "unknown_payload_field": each(
            lambda i: (
                None
                if (keys := _payload_keys(records[i])) is None or etype[i] not in allowed
                else bool(keys - allowed[etype[i]])
            )
        ),
        "event_id_not_uuid": [x is not None and not is_uuid(x) for x in event_id],
        "user_id_missing": [x is None for x in user],
        "user_id_too_long": [None if x is None else len(x) > ids.user_id_max_length for x in user],
        "user_id_pattern": [None if x is None else not user_ok(x) for x in user],
        "session_id_too_long": [None if x is None else len(x) > SESSION_ID_MAX for x in session],
        "session_id_nul": [None if x is None else NUL in x for x in session],
        "movie_id_missing": [x is None for x in movie],
        "movie_id_range": [
            None if x is None else not ids.movie_id_min <= x <= ids.movie_id_max for x in movie
        ],
        "occurred_at_format": [
            s is None or not is_rfc3339(s) or us is None
            for s, us in zip(occurred_at, occurred, strict=True)
        ],
        "received_at_format": [
            s is not None and (not is_rfc3339(s) or us is None)
            for s, us in zip(received_at, received, strict=True)
        ],
        "occurred_at_future": each(
            lambda i: None if occurred[i] is None else occurred[i] > reference[i] + skew_us
        ),
        "occurred_at_too_old": each(
            lambda i: None if occurred[i] is None else occurred[i] < reference[i] - age_us
        ),
        "payload_missing": [x is None for x in payload],
        "watch_fields_required": of_type("watch", lambda i: pos[i] is None or dur[i] is None),
        "position_negative": of_type(
            "watch", lambda i: None if pos[i] is None else _spark_gt(0.0, pos[i])
        ),
        "duration_not_positive": of_type(
            "watch", lambda i: None if dur[i] is None else not _spark_gt(dur[i], 0.0)
        ),
        "duration_too_long": of_type(
            "watch",
            lambda i: None if dur[i] is None else _spark_gt(dur[i], w.max_duration_seconds),
        ),
        "position_beyond_duration": of_type(
            "watch",
            lambda i: (
                None if pos[i] is None or dur[i] is None else _spark_gt(pos[i], dur[i] + tolerance)
            ),
        ),
        "rating_required": of_type("rate", lambda i: rating[i] is None),
        "rating_range": of_type("rate", lambda i: None if rating[i] is None else rating_breaks(i)),
        "text_required": of_type("comment", lambda i: text[i] is None),
        "text_nul": of_type("comment", lambda i: None if text[i] is None else NUL in text[i]),
        "text_length": of_type(
            "comment",
            lambda i: None
            if text_len[i] is None
            else not c.min_length <= text_len[i] <= c.max_length,
        ),
        "target_required": of_type("click", lambda i: target[i] is None),
        "target_unknown": of_type(
            "click", lambda i: None if target[i] is None else target[i] not in targets
        ),
    }


def validate_events(
    events: pd.DataFrame, rules: TransformRules, now: datetime | None = None
) -> pd.DataFrame:
    """``events`` plus ``quarantine_reason`` (the first broken rule, or null) and
    ``quarantine_rule`` (its short code). ``now`` is the reference of an event without
    ``received_at`` (Spark's ``current_timestamp()``)."""
    now_us = round(((now or datetime.now(UTC)) - EPOCH) / timedelta(microseconds=1))
    checks = _checks(events, rules, now_us)
    if set(checks) != set(EVENT_CHECKS):
        raise ValueError(f"checks differ from the catalogue: {set(checks) ^ set(EVENT_CHECKS)}")
    reasons = event_reasons(rules)
    ordered = [(name, checks[name]) for name in EVENT_CHECKS]
    found: list[str | None] = []
    for i in range(len(events)):
        reason = None
        for name, broken in ordered:
            if broken[i] is True:
                reason = reasons[name]
                if name in REASON_WITH_VALUE:
                    value = events[REASON_WITH_VALUE[name]].iat[i]
                    reason = reason + value if value is not None else None
                break
        found.append(reason)
    return events.assign(
        quarantine_reason=pd.Series(found, index=events.index, dtype=object),
        quarantine_rule=pd.Series(
            [rule_code(x) if x is not None else None for x in found],
            index=events.index,
            dtype=object,
        ),
    )


def split_valid(validated: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    broken = validated["quarantine_reason"].notna()
    return validated[~broken], validated[broken]
