"""Pure pandas transforms: the Spark job's transforms (:mod:`cinepulse_spark_jobs.transforms`)
function for function, same names, same order, over pandas frames of MongoDB documents (the
validation step, :func:`~cinepulse_pandas_fallback.checks.validate_events` and
:func:`~cinepulse_pandas_fallback.checks.split_valid`, is in :mod:`.checks`).

Each function takes frames (and the :class:`TransformRules`) and returns frames; no I/O. The
rules, the checks' order and wording, the envelope's field lists and the derived event id
come from :mod:`cinepulse_common` (shared with Spark); what is here is how *pandas* computes
the same values as Spark's SQL does, including the corners where Spark's semantics are not
Python's:

* reading a field as Spark's ``from_json`` does with its schema (:mod:`.spark_json`);
* ``NaN`` in comparisons is larger than any number and equal to itself (Spark's order), in
  the checks of :func:`~cinepulse_pandas_fallback.checks.validate_events` (:mod:`.checks`);
* exact decimals with ``ROUND_HALF_UP``, each rounding Spark does (the division to scale 38,
  its result type's scale 13, then 4 places) done the same way (here);
* timestamps to the microsecond (further digits truncated), on the proleptic Gregorian
  calendar, offsets up to +-18:00 (Java's ``ZoneOffset``; :mod:`.spark_time`).

The input is the archiver's document (``record`` is the JSON object as received, parsed):
``raw`` is that object as JSON text. Python's JSON parser, unlike Spark's, accepts ``NaN``
and ``Infinity``; a record holding one is not strict JSON, as Spark finds, and is
quarantined as not a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import pandas as pd

from cinepulse_common.events import normalise_comment_text
from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import (
    ENVELOPE_FIELDS,
    SOURCE_COLUMNS,
    source_event_id,
)
from cinepulse_common.warehouse import EVENT_COLUMNS
from cinepulse_pandas_fallback.spark_json import FIELD_READERS, _payload, _raw
from cinepulse_pandas_fallback.spark_time import US_PER_S, date_key, timestamp_us, to_datetime


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


def deduplicate_events(events: pd.DataFrame, rules: TransformRules) -> pd.DataFrame:
    """Per dedup key (the rules' ``dedup.key``), the first copy by Kafka position (topic,
    partition, offset; ``dedup.keep``) and every other copy whose content
    (``dedup.compare``) differs from it, as Spark's: an exact copy of the first is dropped.
    The load's event-id registry ranks the copies the same way, makes a fact of the first and
    quarantines the others (across chunks too)."""
    ascending = rules.dedup.keep == "first"
    ordered = events.sort_values(list(SOURCE_COLUMNS), ascending=ascending, kind="stable")
    keys = ordered[list(rules.dedup.key)].to_dict("records")
    ids = pd.Series(
        [json.dumps([r[k] for k in rules.dedup.key], default=str) for r in keys],
        index=ordered.index,
        dtype=object,
    )
    content = pd.Series(
        [
            json.dumps([r[c] for c in rules.dedup.compare], sort_keys=True, default=str)
            for r in ordered[list(rules.dedup.compare)].to_dict("records")
        ],
        index=ordered.index,
        dtype=object,
    )
    first = content.groupby(ids, sort=False).transform("first")
    return ordered[~ids.duplicated(keep="first") | (content != first)]


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
    each comment, from :func:`cinepulse_emotion.classify_comments`; null for the
    other event types."""
    texts = events["comment_text"]
    present = texts.notna()
    values: dict[str, list[Any]] = {c: [None] * len(events) for c in EMOTION_COLUMNS}
    if present.any():
        from cinepulse_emotion import classify_comments

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
