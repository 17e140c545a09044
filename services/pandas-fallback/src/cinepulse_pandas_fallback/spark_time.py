"""Timestamps as Spark reads them: RFC 3339 text to microseconds since the epoch (further
digits truncated), on the proleptic Gregorian calendar, offsets up to +-18:00 (Java's
``ZoneOffset``); and the UTC day's ``yyyyMMdd`` key."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S


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


#: the microseconds of years 1-9999 in UTC: what Python's datetime holds
_FIRST_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_LAST_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


def rfc3339_utc(us: int | None) -> str | None:
    """A timestamp as Spark hands it to the load (``date_format`` with
    ``yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX`` in UTC), None outside years 1-9999 (the movie
    transforms make such a time none: PostgreSQL would not read it back as written)."""
    if us is None or not _FIRST_US <= us <= _LAST_US:
        return None
    t = to_datetime(us)
    return f"{t.year:04d}-{t:%m-%dT%H:%M:%S}.{t.microsecond:06d}Z"


def date_key(us: int) -> int:
    """``yyyyMMdd`` of the UTC day, as an integer."""
    y, m, d = _civil_from_days(us // US_PER_DAY)
    return y * 10_000 + m * 100 + d
