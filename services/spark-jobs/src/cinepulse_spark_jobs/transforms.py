"""Pure, importable transforms: extract -> transform(rules) -> load.

Each function takes DataFrames (and the :class:`TransformRules`) and returns DataFrames; no
I/O. The pandas fallback implements functions of the same names over pandas frames, and a
parity test keeps the two paths one. Every number and set comes from
``transform_rules.json``; none is restated here.

* :func:`parse_events` - Kafka records (``value`` bytes) to envelope columns, with an
  explicit schema; a value that is not a JSON object keeps ``event_type`` null.
* :func:`validate_events` - adds ``quarantine_reason``: the first rule the row breaks (or
  null), in the same order and wording family as the envelope models.
* :func:`split_valid` - (valid rows, quarantined rows).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinepulse_common.events import (
    ClickPayload,
    CommentPayload,
    RatePayload,
    WatchEvent,
    WatchPayload,
)
from cinepulse_common.rules import TransformRules

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: RFC 3339 with an explicit offset (the envelope requires an aware timestamp)
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"

PAYLOAD_SCHEMA = T.StructType(
    [
        T.StructField("position_seconds", T.DoubleType()),
        T.StructField("duration_seconds", T.DoubleType()),
        # exact decimal: the step rule must see 4.3 and 4.5 as the JSON text says them
        T.StructField("rating", T.DecimalType(38, 18)),
        T.StructField("text", T.StringType()),
        T.StructField("target", T.StringType()),
    ]
)
EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("movie_id", T.LongType()),
        T.StructField("occurred_at", T.StringType()),
        T.StructField("received_at", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("payload", PAYLOAD_SCHEMA),
    ]
)
SOURCE_COLUMNS = ("topic", "partition", "offset")
#: field names of the envelope models (their schema, not business rules)
ENVELOPE_FIELDS = tuple(WatchEvent.model_fields)
SESSION_ID_MAX = next(
    m.max_length for m in WatchEvent.model_fields["session_id"].metadata if hasattr(m, "max_length")
)
PAYLOAD_FIELDS = {
    "watch": tuple(WatchPayload.model_fields),
    "rate": tuple(RatePayload.model_fields),
    "comment": tuple(CommentPayload.model_fields),
    "click": tuple(ClickPayload.model_fields),
}


def parse_events(records: DataFrame) -> DataFrame:
    """Kafka records (``value`` and, when present, ``topic``/``partition``/``offset``) to
    the envelope's columns plus ``raw`` (the value as text)."""
    raw = F.col("value").cast("string")
    parsed = records.withColumn("raw", raw).withColumn("e", F.from_json("raw", EVENT_SCHEMA))
    keep = [c for c in SOURCE_COLUMNS if c in records.columns]
    return parsed.select(
        *keep,
        "raw",
        *(F.col(f"e.{f.name}").alias(f.name) for f in EVENT_SCHEMA.fields),
    )


def _ts(column: str) -> Column:
    return F.to_timestamp(F.col(column))


def _checks(rules: TransformRules) -> Iterable[tuple[Column, Column]]:
    """(condition that breaks a rule, reason), in the envelope models' order. The reason
    starts with the field it is about; :func:`rule_code` derives the short code from it."""
    ids = rules.identifiers
    t = rules.time
    r = rules.rating
    w = rules.watch
    types = [str(e) for e in rules.event_types]
    targets = list(rules.click.targets) + list(rules.normalisation.click_target_aliases)
    etype = F.col("event_type")
    p = "payload"
    occurred = _ts("occurred_at")
    reference = F.coalesce(_ts("received_at"), F.current_timestamp())
    rating = F.col(f"{p}.rating")
    step = F.lit(r.step).cast(T.DecimalType(38, 18))

    # json_object_keys is null for text that is not a JSON object
    yield (
        F.col("raw").isNull() | F.json_object_keys(F.col("raw")).isNull(),
        F.lit("not a JSON object"),
    )
    yield etype.isNull(), F.lit(f"missing event_type; one of {', '.join(types)}")
    yield ~etype.isin(types), F.concat(F.lit("unknown event_type "), etype)
    # the envelope models forbid unknown fields, at the top and in each payload
    keys = F.json_object_keys(F.col("raw"))
    yield (
        F.size(F.array_except(keys, F.array(*map(F.lit, ENVELOPE_FIELDS)))) > 0,
        F.lit("unknown field in the envelope"),
    )
    payload_keys = F.json_object_keys(F.get_json_object(F.col("raw"), "$.payload"))
    allowed = F.coalesce(
        *(
            F.when(etype == name, F.array(*map(F.lit, fields)))
            for name, fields in PAYLOAD_FIELDS.items()
        )
    )
    yield F.size(F.array_except(payload_keys, allowed)) > 0, F.lit("unknown field in the payload")
    yield (
        F.col("event_id").isNotNull() & ~F.col("event_id").rlike(UUID_PATTERN),
        F.lit("event_id: not a UUID"),
    )
    yield F.col("user_id").isNull(), F.lit("user_id: missing")
    yield (
        F.length("user_id") > ids.user_id_max_length,
        F.lit(f"user_id is longer than {ids.user_id_max_length} characters"),
    )
    yield (
        ~F.col("user_id").rlike(ids.user_id_pattern),
        F.lit(f"user_id must match {ids.user_id_pattern}"),
    )
    yield (
        F.length("session_id") > SESSION_ID_MAX,
        F.lit(f"session_id is longer than {SESSION_ID_MAX} characters"),
    )
    yield F.col("movie_id").isNull(), F.lit("movie_id: missing")
    yield (
        ~F.col("movie_id").between(ids.movie_id_min, ids.movie_id_max),
        F.lit(f"movie_id must be {ids.movie_id_min} to {ids.movie_id_max}"),
    )
    yield (
        F.col("occurred_at").isNull() | ~F.col("occurred_at").rlike(RFC3339_PATTERN),
        F.lit("occurred_at: not an RFC 3339 timestamp with an offset"),
    )
    yield (
        occurred > reference + F.expr(f"INTERVAL {t.max_future_skew_seconds} SECONDS"),
        F.lit(f"occurred_at is more than {t.max_future_skew_seconds}s in the future"),
    )
    yield (
        occurred < reference - F.expr(f"INTERVAL {t.max_event_age_days} DAYS"),
        F.lit(f"occurred_at is more than {t.max_event_age_days} days old"),
    )
    yield F.col(p).isNull(), F.lit("payload: missing")
    # watch
    is_watch = etype == "watch"
    pos, dur = F.col(f"{p}.position_seconds"), F.col(f"{p}.duration_seconds")
    yield (
        is_watch & (pos.isNull() | dur.isNull()),
        F.lit("payload: position_seconds and duration_seconds required"),
    )
    yield is_watch & (pos < 0), F.lit("payload.position_seconds: must be >= 0")
    yield is_watch & (dur <= 0), F.lit("payload.duration_seconds: must be > 0")
    yield (
        is_watch & (dur > w.max_duration_seconds),
        F.lit(f"duration_seconds exceeds {w.max_duration_seconds}"),
    )
    yield (
        is_watch & (pos > dur + F.lit(w.position_tolerance_seconds)),
        F.lit("position_seconds is beyond duration_seconds (+tolerance)"),
    )
    # rate
    is_rate = etype == "rate"
    yield is_rate & rating.isNull(), F.lit("payload.rating: required")
    yield (
        is_rate
        & ((rating < F.lit(r.min)) | (rating > F.lit(r.max)) | ((rating % step) != F.lit(0))),
        F.lit(f"rating must be {r.min} to {r.max} in steps of {r.step}"),
    )
    # comment (length after normalisation: see normalise_comment_length)
    is_comment = etype == "comment"
    text_len = F.col("_comment_length")
    yield is_comment & F.col(f"{p}.text").isNull(), F.lit("payload.text: required")
    yield (
        is_comment & ~text_len.between(rules.comment.min_length, rules.comment.max_length),
        F.lit(
            f"text must be {rules.comment.min_length} to {rules.comment.max_length} characters "
            "after normalisation"
        ),
    )
    # click
    is_click = etype == "click"
    yield is_click & F.col(f"{p}.target").isNull(), F.lit("payload.target: required")
    yield is_click & ~F.col(f"{p}.target").isin(targets), F.lit("unknown click target")


def rule_code(reason: Column) -> Column:
    """A short, stable code for a reason: its first word (the field or the check)."""
    return F.regexp_extract(reason, r"^([A-Za-z_.]+)", 1)


def validate_events(events: DataFrame, rules: TransformRules) -> DataFrame:
    """``events`` plus ``quarantine_reason`` (the first broken rule, or null) and
    ``quarantine_rule`` (its short code)."""
    from cinepulse_spark_jobs.udfs import comment_length

    with_len = events.withColumn("_comment_length", comment_length(rules)(F.col("payload.text")))
    reason: Column = F.lit(None).cast("string")
    for broken, why in reversed(list(_checks(rules))):
        reason = F.when(F.coalesce(broken, F.lit(False)), why).otherwise(reason)
    return (
        with_len.withColumn("quarantine_reason", reason)
        .withColumn(
            "quarantine_rule",
            F.when(F.col("quarantine_reason").isNotNull(), rule_code(F.col("quarantine_reason"))),
        )
        .drop("_comment_length")
    )


def assign_event_ids(events: DataFrame) -> DataFrame:
    """A record without an ``event_id`` gets one derived from where it was read (UUID v5 of
    ``topic:partition:offset``): a replay of the same record gets the same id."""
    from cinepulse_spark_jobs.udfs import source_uuid

    return events.withColumn(
        "event_id",
        F.coalesce(
            F.col("event_id"), source_uuid(F.col("topic"), F.col("partition"), F.col("offset"))
        ),
    )


def deduplicate_events(events: DataFrame) -> DataFrame:
    """One row per ``event_id`` (the rules' dedup key) within what is processed together."""
    return events.dropDuplicates(["event_id"])


def split_valid(validated: DataFrame) -> tuple[DataFrame, DataFrame]:
    return (
        validated.filter(F.col("quarantine_reason").isNull()),
        validated.filter(F.col("quarantine_reason").isNotNull()),
    )
