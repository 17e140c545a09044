"""The ``movie`` topic as Spark's stream models it, over the archiver's ``movies`` documents:
:func:`parse_movies`, :func:`validate_movies`, :func:`latest_movies` and
:func:`model_movies`, by the same names as ``cinepulse_spark_jobs.transforms``, giving the
rows :func:`cinepulse_common.warehouse.load_movies` takes (``MOVIE_COLUMNS`` order).

Spark's semantics kept: ``from_json`` with the movie schema (a value of the wrong JSON type
is null for that field only: :mod:`cinepulse_pandas_fallback.spark_json`), the checks in
order (the first that fails is the reason), ``to_date``'s date forms, ``round`` half up on a
double's decimal text, the newest ``fetched_at`` per movie (then the latest offset; handed
over as ``date_format`` writes it in UTC, none outside years 1-9999), and the lists as
``to_json`` writes them (null fields left out, genres through the rules' aliases, an alias
to ``""`` or a missing id/name dropping the element).
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import rule_code
from cinepulse_common.warehouse.columns import MOVIE_COLUMNS
from cinepulse_pandas_fallback.spark_json import _raw, as_double, as_long, as_string
from cinepulse_pandas_fallback.spark_time import _days_in_month, rfc3339_utc, timestamp_us

SOURCE_COLUMNS = ("topic", "partition", "offset")
#: the archiver's collection of the movie topic's records (cinepulse_archiver.documents.MOVIES)
MOVIES_COLLECTION = "movies"
INT32_MAX = 2**31 - 1
LONGS = ("id", "runtime", "budget", "revenue", "vote_count")
DOUBLES = ("popularity", "vote_average")
STRINGS = (
    "title",
    "original_title",
    "original_language",
    "overview",
    "tagline",
    "status",
    "release_date",
    "imdb_id",
    "fetched_at",
)
LISTS = {"genres": (), "keywords": (), "production_companies": ("origin_country",)}
FIELDS = (*LONGS, *DOUBLES, *STRINGS, "adult", *LISTS)

# Spark's string -> date: [+-]yyyy[y..], then -[m]m, then -[d]d, then 'T' or ' ' and anything
_DATE = re.compile(r"([+-]?)(\d{4,7})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ].*)?)?)?", re.DOTALL)


def spark_date(text: str | None) -> date | None:
    """``to_date(text)`` as Spark casts a string to a date (surrounding whitespace and
    control characters trimmed), None when it cannot."""
    if text is None:
        return None
    m = _DATE.fullmatch(text.strip("".join(chr(c) for c in range(0x21))))
    if m is None:
        return None
    sign, y, mo, d = m.groups()
    year = int(y) * (-1 if sign == "-" else 1)
    month, day = int(mo or 1), int(d or 1)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if not 1 <= year <= 9999:  # beyond Python's dates (Spark's too for PostgreSQL's sake)
        return None
    return date(year, month, day)


def _list(value: Any, extra: tuple[str, ...]) -> list[dict[str, Any] | None] | None:
    if not isinstance(value, list):
        return None
    out: list[dict[str, Any] | None] = []
    for e in value:
        if isinstance(e, dict):
            item = {"id": as_long(e.get("id")), "name": as_string(e.get("name"))}
            item |= {x: as_string(e.get(x)) for x in extra}
            out.append(item)
        elif e is None:
            out.append(None)
        else:  # an element that is no object: Spark reads the whole list as null
            return None
    return out


def parse_movies(documents: pd.DataFrame) -> pd.DataFrame:
    """Archived ``movies`` documents to the movie's columns plus ``raw`` (and the source
    position)."""
    records = documents["record"].tolist()
    columns: dict[str, list[Any]] = {
        c: documents[c].tolist() for c in SOURCE_COLUMNS if c in documents
    }
    columns["raw"] = [_raw(r) for r in records]
    columns["is_object"] = [isinstance(r, dict) for r in records]
    objects = [r if isinstance(r, dict) else {} for r in records]
    for name in LONGS:
        columns[name] = [as_long(r.get(name)) for r in objects]
    for name in DOUBLES:
        columns[name] = [as_double(r.get(name)) for r in objects]
    for name in STRINGS:
        columns[name] = [as_string(r.get(name)) for r in objects]
    columns["adult"] = [
        r.get("adult") if isinstance(r.get("adult"), bool) else None for r in objects
    ]
    for name, extra in LISTS.items():
        columns[name] = [_list(r.get(name), extra) for r in objects]
    return pd.DataFrame(
        {k: pd.Series(v, dtype=object, index=documents.index) for k, v in columns.items()},
        index=documents.index,
    )


def _reason(m: dict[str, Any]) -> str | None:
    """The star schema's domain constraints on a movie (its CHECKs), the first broken one."""
    if not m["is_object"]:
        return "not a JSON object"
    if m["id"] is None or m["id"] <= 0:
        return "id: missing or not positive"
    if m["title"] is None or m["title"].strip(" ") == "":
        return "title: missing"
    if m["release_date"] is not None and spark_date(m["release_date"]) is None:
        return "release_date: not a date"
    for name in ("runtime", "budget", "revenue", "vote_count", "popularity"):
        if m[name] is not None and m[name] < 0:
            return f"{name}: must be >= 0"
    for name in ("runtime", "vote_count"):
        if m[name] is not None and m[name] > INT32_MAX:
            return f"{name}: too large"
    v = m["vote_average"]
    if v is not None and not (0 <= v <= 10):
        return "vote_average: must be 0 to 10"
    return None


def validate_movies(movies: pd.DataFrame) -> pd.DataFrame:
    reasons = [_reason(m) for m in movies.to_dict("records")]
    out = movies.copy()
    out["quarantine_reason"] = pd.Series(reasons, dtype=object, index=movies.index)
    out["quarantine_rule"] = pd.Series(
        [rule_code(r) if r is not None else None for r in reasons], dtype=object, index=movies.index
    )
    return out


def split_valid(validated: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    held = validated["quarantine_reason"].notna()
    return validated[~held], validated[held]


def latest_movies(movies: pd.DataFrame) -> pd.DataFrame:
    """One row per movie: the newest fetch (nulls last), then the latest Kafka offset."""
    if movies.empty:
        return movies
    fetched = [timestamp_us(t) for t in movies["fetched_at"]]
    ranked = movies.assign(
        _has=[f is not None for f in fetched],
        _at=[f if f is not None else 0 for f in fetched],
        _offset=movies.get("offset", 0),
    ).sort_values(["id", "_has", "_at", "_offset"], ascending=[True, False, False, False])
    return ranked.drop_duplicates("id").drop(columns=["_has", "_at", "_offset"])


def _round1(v: float | None) -> Decimal | None:
    if v is None:
        return None
    return Decimal(repr(v)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _named(items: list[dict[str, Any] | None] | None, aliases: dict[str, str] | None) -> str:
    kept = []
    for e in items or []:
        if e is None or e["id"] is None:
            continue
        name = e["name"]
        if aliases is not None and name is not None:
            name = aliases.get(name, name)
        if (name or "") == "":
            continue
        # to_json leaves null fields out
        kept.append({k: v for k, v in (e | {"name": name}).items() if v is not None})
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


def model_movies(movies: pd.DataFrame, rules: TransformRules) -> pd.DataFrame:
    """The columns of :func:`cinepulse_common.warehouse.load_movies`, in its order."""
    aliases = {k: str(v) for k, v in rules.normalisation.genre_aliases.items()}
    rows = []
    for m in movies.to_dict("records"):
        values = {
            "movie_id": m["id"],
            "fetched_at": rfc3339_utc(timestamp_us(m["fetched_at"])),
            "runtime_minutes": m["runtime"],
            "release_date": spark_date(m["release_date"]),
            "vote_average": _round1(m["vote_average"]),
            "adult": bool(m["adult"]) if m["adult"] is not None else False,
            "genres": _named(m["genres"], aliases),
            "keywords": _named(m["keywords"], None),
            "companies": _named(m["production_companies"], None),
        }
        rows.append(tuple(values[c] if c in values else m[c] for c in MOVIE_COLUMNS))
    return pd.DataFrame(rows, columns=list(MOVIE_COLUMNS), dtype=object)


def transform_movies(
    documents: pd.DataFrame, rules: TransformRules
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Archived movie documents -> (load_movies rows, quarantined records), as Spark's
    ``process_movies_batch``."""
    valid, quarantined = split_valid(validate_movies(parse_movies(documents)))
    return model_movies(latest_movies(valid), rules), quarantined
