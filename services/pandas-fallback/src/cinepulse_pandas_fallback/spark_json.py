"""Reading a JSON value as Spark's ``from_json`` does with its schema: a value of the wrong
JSON type is null for that field only (a number where a string is expected is its JSON text,
doubles written as Java writes them: ``1.0E7``); a decimal also parses from a string (Java's
``BigDecimal``, commas dropped); a double also from ``"NaN"``/``"Infinity"``."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

from cinepulse_common.validation import (
    ENVELOPE_FIELDS,
    PAYLOAD_FIELDS,
)

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
#: Spark's decimal type of ``payload.rating`` (exact, as the JSON text says it)
RATING_PRECISION, RATING_SCALE = 38, 18


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
