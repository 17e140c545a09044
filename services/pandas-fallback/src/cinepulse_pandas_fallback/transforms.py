"""Pure pandas transforms: the Spark job's transforms (:mod:`cinepulse_spark_jobs.transforms`)
function for function, same names, same order, over pandas frames of MongoDB documents.

Each function takes frames (and the :class:`TransformRules`) and returns frames; no I/O. The
rules, the checks' order and wording, the envelope's field lists and the derived event id
come from :mod:`cinepulse_common` (shared with Spark); what is here is how *pandas* computes
the same values as Spark's SQL does, including the corners where Spark's semantics are not
Python's:

* reading a field as Spark's ``from_json`` does with its schema: a value of the wrong JSON
  type is null for that field only (a number where a string is expected is its JSON text,
  doubles written as Java writes them: ``1.0E7``); a decimal also parses from a string
  (Java's ``BigDecimal``, commas dropped); a double also from ``"NaN"``/``"Infinity"``;
* ``NaN`` in comparisons is larger than any number and equal to itself (Spark's order);
* exact decimals with ``ROUND_HALF_UP``, each rounding Spark does (the division to scale 38,
  its result type's scale 13, then 4 places) done the same way;
* timestamps to the microsecond (further digits truncated), on the proleptic Gregorian
  calendar, offsets up to +-18:00 (Java's ``ZoneOffset``).

The input is the archiver's document (``record`` is the JSON object as received, parsed):
``raw`` is that object as JSON text. Python's JSON parser, unlike Spark's, accepts ``NaN``
and ``Infinity``; a record holding one is not strict JSON, as Spark finds, and is
quarantined as not a JSON object.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
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
    SOURCE_COLUMNS,
    UUID_PATTERN,
    event_reasons,
    rule_code,
    source_event_id,
)
from cinepulse_common.warehouse import EVENT_COLUMNS

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
#: Spark's decimal type of ``payload.rating`` (exact, as the JSON text says it)
RATING_PRECISION, RATING_SCALE = 38, 18
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S


# -- reading a JSON value as Spark's from_json does with a type -----------------------------
def _java_double(d: float) -> str:
    """``Double.toString``: plain between 1e-3 and 1e7, else ``d.dddE<n>``; always a digit
    after the point. (JDK 19+ prints the shortest digits, as Python's ``repr``; JDK 17 prints
    a few doubles, e.g. 1e23, with more.)"""
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    sign = "-" if d < 0 else ""
    t = Decimal(repr(abs(d))).as_tuple()
    assert isinstance(t.exponent, int)
    digits = "".join(map(str, t.digits)).rstrip("0") or "0"
    point = len(t.digits) + t.exponent  # digits before the decimal point
    if 1e-3 <= abs(d) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_JSON_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def _jackson_string(s: str) -> str:
    out = []
    for ch in s:
        code = ord(ch)
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04X}")
        elif code > 0xFFFF:  # written as its UTF-16 surrogate pair
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _jackson_json(v: Any) -> str:
    """A JSON value as Spark's parser copies it into a string column (Jackson, compact)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = _java_double(v)
        return f'"{text}"' if not math.isfinite(v) else text
    if isinstance(v, str):
        return _jackson_string(v)
    if isinstance(v, dict):
        return (
            "{"
            + ",".join(f"{_jackson_string(str(k))}:{_jackson_json(x)}" for k, x in v.items())
            + "}"
        )
    if isinstance(v, list | tuple):
        return "[" + ",".join(_jackson_json(x) for x in v) + "]"
    return _jackson_string(str(v))


def as_string(v: Any) -> str | None:
    """Spark ``StringType``: a string as is; any other JSON value as its JSON text."""
    if v is None or isinstance(v, str):
        return v
    return _jackson_json(v)


def as_long(v: Any) -> int | None:
    """Spark ``LongType``: a JSON integer within 64 bits, else null."""
    if isinstance(v, int) and not isinstance(v, bool) and LONG_MIN <= v <= LONG_MAX:
        return int(v)
    return None


_DOUBLE_WORDS = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "+Infinity": math.inf,
    "+INF": math.inf,
    "-Infinity": -math.inf,
    "-INF": -math.inf,
}


def as_double(v: Any) -> float | None:
    """Spark ``DoubleType``: a JSON number, or one of the words Spark reads as NaN/infinity."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return _DOUBLE_WORDS.get(v)
    return None


#: Java's ``BigDecimal(String)``: Unicode decimal digits, optional point and exponent
_BIG_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _fit_decimal(d: Decimal, precision: int, scale: int) -> Decimal | None:
    with localcontext() as ctx:
        ctx.prec = 200
        try:
            q = d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
        return q if abs(q) < Decimal(10) ** (precision - scale) else None


def as_decimal(v: Any, precision: int = RATING_PRECISION, scale: int = RATING_SCALE) -> Any:
    """Spark ``DecimalType(precision, scale)``: a JSON number exactly (the archiver stored
    it as a double: its shortest decimal text), or a numeric string (commas dropped, as
    Spark's en-US parser does); half up to ``scale``; null if it does not fit."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, float):
        if not math.isfinite(v):
            return None
        d = Decimal(repr(v))
    elif isinstance(v, str):
        text = v.replace(",", "")
        if not _BIG_DECIMAL.fullmatch(text):
            return None
        ascii_text = "".join(str(unicodedata.decimal(c)) if c.isdigit() else c for c in text)
        try:
            d = Decimal(ascii_text)
        except InvalidOperation:
            return None
    else:
        return None
    return _fit_decimal(d, precision, scale)


#: the explicit schema: how each envelope field is read (Spark's EVENT_SCHEMA)
FIELD_READERS: dict[str, Callable[[Any], Any]] = {
    "event_id": as_string,
    "user_id": as_string,
    "movie_id": as_long,
    "occurred_at": as_string,
    "session_id": as_string,
    "received_at": as_string,
    "event_type": as_string,
}
PAYLOAD_READERS: dict[str, Callable[[Any], Any]] = {
    "position_seconds": as_double,
    "duration_seconds": as_double,
    "rating": as_decimal,
    "text": as_string,
    "target": as_string,
}
assert set(FIELD_READERS) | {"payload"} == set(ENVELOPE_FIELDS)
assert set(PAYLOAD_READERS) == {f for fields in PAYLOAD_FIELDS.values() for f in fields}


def _payload(v: Any) -> dict[str, Any] | None:
    if not isinstance(v, dict):
        return None
    return {name: read(v.get(name)) for name, read in PAYLOAD_READERS.items()}


def _raw(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_events(documents: pd.DataFrame) -> pd.DataFrame:
    """Archived documents (``record`` and, when present, ``topic``/``partition``/``offset``)
    to the envelope's columns plus ``raw`` (the record as JSON text)."""
    records = documents["record"].tolist()
    columns: dict[str, Any] = {c: documents[c].tolist() for c in SOURCE_COLUMNS if c in documents}
    columns["raw"] = [_raw(r) for r in records]
    objects = [r if isinstance(r, dict) else {} for r in records]
    for name in ENVELOPE_FIELDS:
        if name == "payload":
            columns[name] = [_payload(r.get("payload")) for r in objects]
        else:
            read = FIELD_READERS[name]
            columns[name] = [read(r.get(name)) for r in objects]
    return _frame(columns, index=documents.index)


def _frame(columns: dict[str, Any], index: Any = None) -> pd.DataFrame:
    """A frame of Python values (object columns: no NaN for null, no float for an int)."""
    return pd.DataFrame(
        {k: pd.Series(v, dtype=object, index=index) for k, v in columns.items()}, index=index
    )


# -- assign, normalise types ----------------------------------------------------------------
def assign_event_ids(events: pd.DataFrame) -> pd.DataFrame:
    """A record without an ``event_id`` gets one derived from where it was read (UUID v5 of
    ``topic:partition:offset``, :func:`cinepulse_common.validation.source_event_id`); ids are
    lower-cased (PostgreSQL's uuid ignores case, so the dedup key must too)."""
    ids = [
        (e if e is not None else source_event_id(t, p, o)).lower()
        for e, t, p, o in zip(
            events["event_id"], events["topic"], events["partition"], events["offset"], strict=True
        )
    ]
    return events.assign(event_id=pd.Series(ids, index=events.index, dtype=object))


def normalise_event_types(events: pd.DataFrame, rules: TransformRules) -> pd.DataFrame:
    """``event_type`` through the rules' aliases (``view`` -> ``watch``, ...)."""
    aliases = {k: str(v) for k, v in rules.normalisation.event_type_aliases.items()}
    if not aliases:
        return events
    types = [aliases.get(t, t) if t is not None else None for t in events["event_type"]]
    return events.assign(event_type=pd.Series(types, index=events.index, dtype=object))


# -- validate ---------------------------------------------------------------------------------
def full_match(pattern: str) -> Callable[[str], bool]:
    """The whole value matches (Java's classes: ``\\d`` is ASCII)."""
    compiled = re.compile(pattern, re.ASCII)
    return lambda s: compiled.fullmatch(s) is not None


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 on the proleptic Gregorian calendar (any year, 0 included)."""
    y -= m <= 2
    era = y // 400  # floor division: no C-style adjustment for negative years
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def timestamp_us(text: str | None) -> int | None:
    """Microseconds since the epoch of an RFC 3339 timestamp as Spark reads it (``T`` or a
    space, ``Z`` or an offset up to +-18:00, further digits truncated), else None."""
    if text is None:
        return None
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if m.group(8):
        oh, om = int(m.group(9)), int(m.group(10))
        if om > 59 or oh * 60 + om > 18 * 60:
            return None
        offset = (oh * 3600 + om * 60) * (1 if m.group(8) == "+" else -1)
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * US_PER_S + micros


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


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


def deduplicate_events(events: pd.DataFrame, rules: TransformRules) -> pd.DataFrame:
    """One row per dedup key (the rules' ``dedup.key``) within what is processed together:
    the first by Kafka position (topic, partition, offset), as ``dedup.keep`` says, the same
    choice as Spark's. Across chunks the job drops what an earlier chunk already wrote."""
    ascending = rules.dedup.keep == "first"
    ordered = events.sort_values(list(SOURCE_COLUMNS), ascending=ascending, kind="stable")
    return ordered.drop_duplicates(subset=list(rules.dedup.key), keep="first")


# -- normalise, label, model -----------------------------------------------------------------
def _decimal_of_double(x: float, scale: int) -> Decimal:
    """Spark's cast of a double to a decimal: its (shortest) decimal text, half up."""
    return Decimal(repr(x)).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)


def _completion_ratio(pos: Decimal, dur: Decimal) -> Decimal:
    """Spark's ``round(least(pos / dur, 1), 4)`` on decimal(10, 2): the quotient is rounded
    half up to scale 38, then to its type's scale 13, then to 4 places."""
    with localcontext() as ctx:
        ctx.prec = 100
        q = (pos / dur).quantize(Decimal(1).scaleb(-38), rounding=ROUND_HALF_UP)
        q = q.quantize(Decimal(1).scaleb(-13), rounding=ROUND_HALF_UP)
        return min(q, Decimal(1)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def date_key(us: int) -> int:
    """``yyyyMMdd`` of the UTC day, as an integer."""
    y, m, d = _civil_from_days(us // US_PER_DAY)
    return y * 10_000 + m * 100 + d


def normalise_events(valid: pd.DataFrame, rules: TransformRules) -> pd.DataFrame:
    """Valid events with their modelled values: ``date_key`` (UTC day of ``occurred_at``),
    ``occurred_ts``/``received_ts``, exact decimals, ``completion_ratio`` (position over
    duration, capped at 1, 4 places, half up) and ``completed``, the canonical click target,
    the normalised comment text, and ``is_late``."""
    aliases = rules.normalisation.click_target_aliases
    tolerance_us = rules.time.late_data_tolerance_seconds * US_PER_S
    # valid: occurred_at parses (received_at too, when there is one)
    occurred: list[Any] = [timestamp_us(x) for x in valid["occurred_at"]]
    received: list[Any] = [timestamp_us(x) for x in valid["received_at"]]
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "position_seconds",
            "duration_seconds",
            "completion_ratio",
            "completed",
            "rating",
            "comment_text",
            "target",
        )
    }
    for etype, payload in zip(valid["event_type"], valid["payload"], strict=True):
        watch = rate = comment = click = None
        if etype == "watch":
            pos = _decimal_of_double(payload["position_seconds"], 2)
            dur = _decimal_of_double(payload["duration_seconds"], 2)
            ratio = _completion_ratio(pos, dur)
            watch = (pos, dur, ratio, float(ratio) >= rules.watch.completed_ratio)
        elif etype == "rate":
            rate = payload["rating"].quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        elif etype == "comment":
            comment = normalise_comment_text(payload["text"], rules)
        elif etype == "click":
            click = aliases.get(payload["target"], payload["target"])
        for name, value in zip(
            ("position_seconds", "duration_seconds", "completion_ratio", "completed"),
            watch or (None,) * 4,
            strict=True,
        ):
            columns[name].append(value)
        columns["rating"].append(rate)
        columns["comment_text"].append(comment)
        columns["target"].append(click)
    return valid.assign(
        **_frame(
            {
                "occurred_ts": [to_datetime(x) for x in occurred],
                "received_ts": [to_datetime(x) if x is not None else None for x in received],
                "date_key": [date_key(x) for x in occurred],
                **columns,
                "is_late": [
                    rec is not None and rec > occ + tolerance_us
                    for occ, rec in zip(occurred, received, strict=True)
                ],
            },
            index=valid.index,
        )
    )


EMOTION_COLUMNS = ("emotion", "sentiment", "emotion_scores", "classifier_version")


def label_comments(events: pd.DataFrame) -> pd.DataFrame:
    """``emotion``, ``sentiment``, ``emotion_scores`` (JSON) and ``classifier_version`` of
    each comment, from :func:`cinepulse_common.emotion.classify_comments`; null for the
    other event types."""
    texts = events["comment_text"]
    present = texts.notna()
    values: dict[str, list[Any]] = {c: [None] * len(events) for c in EMOTION_COLUMNS}
    if present.any():
        from cinepulse_common.emotion import classify_comments

        positions = [i for i, p in enumerate(present) if p]
        labels = classify_comments(texts[present].tolist())
        for i, e in zip(positions, labels, strict=True):
            values["emotion"][i] = e.emotion
            values["sentiment"][i] = e.sentiment
            values["emotion_scores"][i] = json.dumps(e.scores, sort_keys=True)
            values["classifier_version"][i] = e.version
    return events.assign(**_frame(values, index=events.index))


def _payload_json(raw: str) -> str | None:
    """``get_json_object(raw, '$.payload')`` of a valid event (its payload is an object)."""
    payload = json.loads(raw).get("payload")
    return (
        None if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    )


def model_events(events: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """The columns of the shared load step, in its order (then ``extra`` columns)."""
    renamed: dict[str, Sequence[Any]] = {
        "occurred_at": events["occurred_ts"].tolist(),
        "received_at": events["received_ts"].tolist(),
        "source_topic": events["topic"].tolist(),
        "source_partition": events["partition"].tolist(),
        "source_offset": events["offset"].tolist(),
        "payload": [_payload_json(raw) for raw in events["raw"]],
    }
    columns = {c: renamed[c] if c in renamed else events[c].tolist() for c in EVENT_COLUMNS}
    columns |= {c: events[c].tolist() for c in extra}
    return _frame(columns, index=events.index)
