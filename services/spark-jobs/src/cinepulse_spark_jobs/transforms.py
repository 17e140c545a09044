"""Pure, importable transforms: extract -> transform(rules) -> load.

Each function takes DataFrames (and the :class:`TransformRules`) and returns DataFrames; no
I/O. The pandas fallback implements functions of the same names over pandas frames, and a
parity test keeps the two paths one. Every number and set comes from
``transform_rules.json``; none is restated here.

* :func:`parse_events` - Kafka records (``value`` bytes) to envelope columns, with an
  explicit schema; a value that is not a JSON object keeps ``event_type`` null.
* :func:`validate_events` - adds ``quarantine_reason``: the first rule the row breaks (or
  null), in the order and with the wording of :mod:`cinepulse_common.validation` (shared
  with the pandas fallback).
* :func:`split_valid` - (valid rows, quarantined rows).
* :func:`normalise_event_types` - legacy spellings of ``event_type`` to the canonical ones
  (before validation).
* :func:`deduplicate_events` - exact copies of an ``event_id`` dropped (the load's registry
  judges copies with other content).
* :func:`normalise_events` - click-target aliases, comment text normalisation, exact decimals,
  the watch's completion ratio, the UTC ``date_key``, and the late-arrival flag.
* :func:`label_comments` - the emotion and sentiment of each comment (the shared classifier).
* :func:`model_events` - the columns the shared load step takes
  (:data:`cinepulse_common.warehouse.EVENT_COLUMNS`).
* movies: :func:`parse_movies`, :func:`validate_movies`, :func:`latest_movies`,
  :func:`model_movies`.

Late data: an event is *late* when it reached the gateway more than
``time.late_data_tolerance_seconds`` after it happened. A late event is still modelled (no
loss): it is flagged and counted, and the daily aggregates recompute every date whose facts
changed since their last run, so a late event lands in its own day's figures.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cinepulse_common.rules import TransformRules
from cinepulse_common.validation import (
    ENVELOPE_FIELDS,
    EVENT_CHECKS,
    NUL,
    PAYLOAD_FIELDS,
    REASON_WITH_VALUE,
    RFC3339_PATTERN,
    RULE_CODE_PATTERN,
    SESSION_ID_MAX,
    SOURCE_COLUMNS,
    UUID_PATTERN,
    event_reasons,
)
from cinepulse_common.warehouse import EVENT_COLUMNS, MOVIE_COLUMNS

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
    # try_: a malformed value is null (and quarantined), never an error that would fail
    # the whole micro-batch (ANSI mode) and so every restart of the query
    return F.try_to_timestamp(F.col(column))


def full_match(column: Column, pattern: str) -> Column:
    """The *whole* value matches (``rlike`` finds; Java's ``$`` also matches before a final
    line terminator)."""
    return column.rlike(f"^(?:{pattern})(?![\\s\\S])")


def _checks(rules: TransformRules) -> Iterable[tuple[str, Column]]:
    """(check of :data:`cinepulse_common.validation.EVENT_CHECKS`, condition that breaks
    it); :func:`validate_events` applies them in the catalogue's order."""
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
    yield "not_object", F.col("raw").isNull() | F.json_object_keys(F.col("raw")).isNull()
    yield "missing_event_type", etype.isNull()
    yield "unknown_event_type", ~etype.isin(types)
    # the envelope models forbid unknown fields, at the top and in each payload
    keys = F.json_object_keys(F.col("raw"))
    yield (
        "unknown_field",
        F.size(F.array_except(keys, F.array(*map(F.lit, ENVELOPE_FIELDS)))) > 0,
    )
    payload_keys = F.json_object_keys(F.get_json_object(F.col("raw"), "$.payload"))
    allowed = F.coalesce(
        *(
            F.when(etype == name, F.array(*map(F.lit, fields)))
            for name, fields in PAYLOAD_FIELDS.items()
        )
    )
    yield "unknown_payload_field", F.size(F.array_except(payload_keys, allowed)) > 0
    yield (
        "event_id_not_uuid",
        F.col("event_id").isNotNull() & ~full_match(F.col("event_id"), UUID_PATTERN),
    )
    yield "user_id_missing", F.col("user_id").isNull()
    yield "user_id_too_long", F.length("user_id") > ids.user_id_max_length
    yield "user_id_pattern", ~full_match(F.col("user_id"), ids.user_id_pattern)
    yield "session_id_too_long", F.length("session_id") > SESSION_ID_MAX
    yield "session_id_nul", F.col("session_id").contains(NUL)
    yield "movie_id_missing", F.col("movie_id").isNull()
    yield "movie_id_range", ~F.col("movie_id").between(ids.movie_id_min, ids.movie_id_max)
    # the pattern admits what is no instant (Feb 30, 24:00, +18:01): unparseable breaks it too
    yield (
        "occurred_at_format",
        F.col("occurred_at").isNull()
        | ~full_match(F.col("occurred_at"), RFC3339_PATTERN)
        | occurred.isNull(),
    )
    received = F.col("received_at")
    yield (
        "received_at_format",
        received.isNotNull()
        & (~full_match(received, RFC3339_PATTERN) | _ts("received_at").isNull()),
    )
    yield (
        "occurred_at_future",
        occurred > reference + F.expr(f"INTERVAL {t.max_future_skew_seconds} SECONDS"),
    )
    yield (
        "occurred_at_too_old",
        occurred < reference - F.expr(f"INTERVAL {t.max_event_age_days} DAYS"),
    )
    yield "payload_missing", F.col(p).isNull()
    # watch
    is_watch = etype == "watch"
    pos, dur = F.col(f"{p}.position_seconds"), F.col(f"{p}.duration_seconds")
    yield "watch_fields_required", is_watch & (pos.isNull() | dur.isNull())
    yield "position_negative", is_watch & (pos < 0)
    yield "duration_not_positive", is_watch & (dur <= 0)
    yield "duration_too_long", is_watch & (dur > w.max_duration_seconds)
    yield (
        "position_beyond_duration",
        is_watch & (pos > dur + F.lit(w.position_tolerance_seconds)),
    )
    # rate
    is_rate = etype == "rate"
    yield "rating_required", is_rate & rating.isNull()
    yield (
        "rating_range",
        is_rate
        & ((rating < F.lit(r.min)) | (rating > F.lit(r.max)) | ((rating % step) != F.lit(0))),
    )
    # comment (length after normalisation: see normalise_comment_length)
    is_comment = etype == "comment"
    text_len = F.col("_comment_length")
    yield "text_required", is_comment & F.col(f"{p}.text").isNull()
    yield "text_nul", is_comment & F.col(f"{p}.text").contains(NUL)
    yield (
        "text_length",
        is_comment & ~text_len.between(rules.comment.min_length, rules.comment.max_length),
    )
    # click
    is_click = etype == "click"
    yield "target_required", is_click & F.col(f"{p}.target").isNull()
    yield "target_unknown", is_click & ~F.col(f"{p}.target").isin(targets)


def rule_code(reason: Column) -> Column:
    """A short, stable code for a reason: its first word (the field or the check)."""
    return F.regexp_extract(reason, RULE_CODE_PATTERN, 1)


def validate_events(events: DataFrame, rules: TransformRules) -> DataFrame:
    """``events`` plus ``quarantine_reason`` (the first broken rule, or null) and
    ``quarantine_rule`` (its short code)."""
    from cinepulse_spark_jobs.udfs import normalise_comment

    text = F.col("payload.text")
    with_len = events.withColumn(
        "_comment_length",
        F.length(normalise_comment(rules)(F.when(F.col("event_type") == "comment", text))),
    )
    checks = dict(_checks(rules))
    if set(checks) != set(EVENT_CHECKS):
        raise ValueError(f"checks differ from the catalogue: {set(checks) ^ set(EVENT_CHECKS)}")
    reasons = event_reasons(rules)
    reason: Column = F.lit(None).cast("string")
    for name in reversed(EVENT_CHECKS):
        why = F.lit(reasons[name])
        if name in REASON_WITH_VALUE:
            why = F.concat(why, F.col(REASON_WITH_VALUE[name]))
        reason = F.when(F.coalesce(checks[name], F.lit(False)), why).otherwise(reason)
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
    ``topic:partition:offset``): a replay of the same record gets the same id. Ids are
    lower-cased: PostgreSQL's uuid type ignores case, so the dedup key must too."""
    from cinepulse_spark_jobs.udfs import source_uuid

    return events.withColumn(
        "event_id",
        F.lower(
            F.coalesce(
                F.col("event_id"),
                source_uuid(F.col("topic"), F.col("partition"), F.col("offset")),
            )
        ),
    )


def deduplicate_events(events: DataFrame, rules: TransformRules) -> DataFrame:
    """Per dedup key (the rules' ``dedup.key``) within what is processed together, the first
    copy by Kafka position (topic, partition, offset; ``dedup.keep``), and every other copy
    whose content (``dedup.compare``) differs from it: an exact copy of the first (a resend)
    is dropped here. The load's event-id registry
    (:mod:`cinepulse_common.warehouse.registry`) ranks the copies the same way, makes a fact
    of the first and quarantines the others, within a batch as across batches (the fallback
    the same)."""
    from pyspark.sql.window import Window

    content = F.struct(
        *(
            (F.to_json(F.col(c)) if c == "payload" else F.col(c)).alias(c)
            for c in rules.dedup.compare
        )
    )
    position = [F.col(c).asc() for c in SOURCE_COLUMNS]
    if rules.dedup.keep == "last":
        position = [F.col(c).desc() for c in SOURCE_COLUMNS]
    order = Window.partitionBy(*rules.dedup.key).orderBy(*position)
    ranked = events.withColumn("_n", F.row_number().over(order)).withColumn(
        "_first", F.first(content).over(order)
    )
    kept = ranked.filter((F.col("_n") == 1) | ~content.eqNullSafe(F.col("_first")))
    return kept.drop("_n", "_first")


def split_valid(validated: DataFrame) -> tuple[DataFrame, DataFrame]:
    return (
        validated.filter(F.col("quarantine_reason").isNull()),
        validated.filter(F.col("quarantine_reason").isNotNull()),
    )


def _alias_map(aliases: dict[str, str]) -> Column:
    pairs = [F.lit(x) for k, v in sorted(aliases.items()) for x in (k, v)]
    return F.create_map(*pairs) if pairs else F.create_map().cast("map<string,string>")


def normalise_event_types(events: DataFrame, rules: TransformRules) -> DataFrame:
    """``event_type`` through the rules' aliases (``view`` -> ``watch``, ...)."""
    aliases = {k: str(v) for k, v in rules.normalisation.event_type_aliases.items()}
    if not aliases:
        return events
    etype = F.col("event_type")
    return events.withColumn("event_type", F.coalesce(_alias_map(aliases)[etype], etype))


def normalise_events(valid: DataFrame, rules: TransformRules) -> DataFrame:
    """Valid events with their modelled values: ``date_key`` (UTC day of ``occurred_at``),
    ``occurred_ts``/``received_ts``, exact decimals, ``completion_ratio`` (position over
    duration, capped at 1, 4 places, half up) and ``completed``, the canonical click target,
    the normalised comment text, and ``is_late``."""
    from cinepulse_spark_jobs.udfs import normalise_comment

    p = "payload"
    etype = F.col("event_type")
    occurred, received = _ts("occurred_at"), _ts("received_at")
    pos = F.col(f"{p}.position_seconds").cast(T.DecimalType(10, 2))
    dur = F.col(f"{p}.duration_seconds").cast(T.DecimalType(10, 2))
    ratio = F.round(F.least(pos / dur, F.lit(1).cast(T.DecimalType(10, 2))), 4).cast(
        T.DecimalType(5, 4)
    )
    is_watch = etype == "watch"
    target = F.col(f"{p}.target")
    tolerance = F.expr(f"INTERVAL {rules.time.late_data_tolerance_seconds} SECONDS")
    return valid.select(
        "*",
        occurred.alias("occurred_ts"),
        received.alias("received_ts"),
        F.date_format(occurred, "yyyyMMdd").cast("int").alias("date_key"),
        F.when(is_watch, pos).alias("position_seconds"),
        F.when(is_watch, dur).alias("duration_seconds"),
        F.when(is_watch, ratio).alias("completion_ratio"),
        F.when(is_watch, ratio >= F.lit(rules.watch.completed_ratio)).alias("completed"),
        F.when(etype == "rate", F.col(f"{p}.rating").cast(T.DecimalType(2, 1))).alias("rating"),
        F.when(etype == "comment", normalise_comment(rules)(F.col(f"{p}.text"))).alias(
            "comment_text"
        ),
        F.when(
            etype == "click",
            F.coalesce(_alias_map(rules.normalisation.click_target_aliases)[target], target),
        ).alias("target"),
        F.coalesce(received > occurred + tolerance, F.lit(False)).alias("is_late"),
    )


def label_comments(events: DataFrame) -> DataFrame:
    """``emotion``, ``sentiment``, ``emotion_scores`` (JSON) and ``classifier_version`` of
    each comment, from :func:`cinepulse_emotion.classify_comments`; null for the
    other event types."""
    from cinepulse_spark_jobs.udfs import classify

    labelled = events.withColumn("_emotion", classify(F.col("comment_text")))
    return labelled.select(
        "*",
        *(
            F.col(f"_emotion.{c}").alias(c)
            for c in ("emotion", "sentiment", "emotion_scores", "classifier_version")
        ),
    ).drop("_emotion")


#: timestamps handed to the load as RFC 3339 text in UTC (the session's time zone): PySpark
#: would hand over naive local-time datetimes
UTC_TEXT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"


def model_events(events: DataFrame, *extra: str) -> DataFrame:
    """The columns of the shared load step, in its order (then ``extra`` columns)."""
    renamed = {
        "occurred_at": F.date_format("occurred_ts", UTC_TEXT),
        "received_at": F.date_format("received_ts", UTC_TEXT),
        "source_topic": F.col("topic"),
        "source_partition": F.col("partition"),
        "source_offset": F.col("offset"),
        "payload": F.get_json_object("raw", "$.payload"),
    }
    return events.select(*(renamed.get(c, F.col(c)).alias(c) for c in EVENT_COLUMNS), *extra)


# -- movies (the ``movie`` topic: the fetcher's normalised movie plus ``fetched_at``) -------
_NAMED = T.ArrayType(
    T.StructType([T.StructField("id", T.LongType()), T.StructField("name", T.StringType())])
)
_COMPANIES = T.ArrayType(
    T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("name", T.StringType()),
            T.StructField("origin_country", T.StringType()),
        ]
    )
)
MOVIE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("title", T.StringType()),
        T.StructField("original_title", T.StringType()),
        T.StructField("original_language", T.StringType()),
        T.StructField("overview", T.StringType()),
        T.StructField("tagline", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("release_date", T.StringType()),
        T.StructField("runtime", T.LongType()),
        T.StructField("budget", T.LongType()),
        T.StructField("revenue", T.LongType()),
        T.StructField("popularity", T.DoubleType()),
        T.StructField("vote_average", T.DoubleType()),
        T.StructField("vote_count", T.LongType()),
        T.StructField("adult", T.BooleanType()),
        T.StructField("imdb_id", T.StringType()),
        T.StructField("genres", _NAMED),
        T.StructField("keywords", _NAMED),
        T.StructField("production_companies", _COMPANIES),
        T.StructField("fetched_at", T.StringType()),
    ]
)
INT32_MAX = 2**31 - 1


def parse_movies(records: DataFrame) -> DataFrame:
    """Kafka records of the ``movie`` topic to the movie's columns plus ``raw``."""
    parsed = records.withColumn("raw", F.col("value").cast("string")).withColumn(
        "m", F.from_json("raw", MOVIE_SCHEMA)
    )
    keep = [c for c in SOURCE_COLUMNS if c in records.columns]
    return parsed.select(
        *keep, "raw", *(F.col(f"m.{f.name}").alias(f.name) for f in MOVIE_SCHEMA.fields)
    )


def _movie_checks() -> Iterable[tuple[Column, Column]]:
    """The star schema's domain constraints on a movie (its CHECKs), as reasons."""
    yield (
        F.col("raw").isNull() | F.json_object_keys(F.col("raw")).isNull(),
        F.lit("not a JSON object"),
    )
    yield F.col("id").isNull() | (F.col("id") <= 0), F.lit("id: missing or not positive")
    yield F.col("title").isNull() | (F.trim("title") == ""), F.lit("title: missing")
    yield (
        # try_to_date: under ANSI mode (Spark 4's default) to_date raises on 1999-02-30 and fails
        # the whole micro-batch; a malformed date is this record's quarantine reason instead
        F.col("release_date").isNotNull() & F.try_to_date("release_date").isNull(),
        F.lit("release_date: not a date"),
    )
    for name in ("runtime", "budget", "revenue", "vote_count", "popularity"):
        yield F.col(name) < 0, F.lit(f"{name}: must be >= 0")
    for name in ("runtime", "vote_count"):
        yield F.col(name) > INT32_MAX, F.lit(f"{name}: too large")
    yield ~F.col("vote_average").between(0, 10), F.lit("vote_average: must be 0 to 10")


def validate_movies(movies: DataFrame) -> DataFrame:
    reason: Column = F.lit(None).cast("string")
    for broken, why in reversed(list(_movie_checks())):
        reason = F.when(F.coalesce(broken, F.lit(False)), why).otherwise(reason)
    return movies.withColumn("quarantine_reason", reason).withColumn(
        "quarantine_rule",
        F.when(F.col("quarantine_reason").isNotNull(), rule_code(F.col("quarantine_reason"))),
    )


def latest_movies(movies: DataFrame) -> DataFrame:
    """One row per movie: the newest fetch (then the latest Kafka offset)."""
    from pyspark.sql.window import Window

    order = Window.partitionBy("id").orderBy(
        _ts("fetched_at").desc_nulls_last(), F.col("offset").desc()
    )
    return movies.withColumn("_n", F.row_number().over(order)).filter("_n = 1").drop("_n")


def model_movies(movies: DataFrame, rules: TransformRules) -> DataFrame:
    """The columns of :func:`cinepulse_common.warehouse.load_movies`, in its order; genre
    names through the rules' aliases (an alias to ``""`` drops the genre)."""
    aliases = _alias_map(rules.normalisation.genre_aliases)

    def named(column: str, *extra: str) -> Column:
        items = F.transform(
            F.coalesce(F.col(column), F.array()),
            lambda e: F.struct(
                e["id"].alias("id"),
                (
                    F.coalesce(aliases[e["name"]], e["name"]) if column == "genres" else e["name"]
                ).alias("name"),
                *(e[x].alias(x) for x in extra),
            ),
        )
        kept = F.filter(
            items, lambda e: e["id"].isNotNull() & (F.coalesce(e["name"], F.lit("")) != "")
        )
        return F.to_json(kept)

    fetched = _ts("fetched_at")
    values = {
        "movie_id": F.col("id"),
        # the load orders a movie's versions by it; a time PostgreSQL cannot read back as
        # written (outside years 1-9999 in UTC) is none, as a missing or malformed one is
        "fetched_at": F.when(F.year(fetched).between(1, 9999), F.date_format(fetched, UTC_TEXT)),
        "runtime_minutes": F.col("runtime"),
        "release_date": F.try_to_date("release_date"),
        "vote_average": F.round(F.col("vote_average"), 1).cast(T.DecimalType(3, 1)),
        "adult": F.coalesce(F.col("adult"), F.lit(False)),
        "genres": named("genres"),
        "keywords": named("keywords"),
        "companies": named("production_companies", "origin_country"),
    }
    return movies.select(*(values.get(c, F.col(c)).alias(c) for c in MOVIE_COLUMNS))
