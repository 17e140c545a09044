"""Spark's rule checks agree with the envelope models, event for event (real Spark, local).

The gateway validates with the pydantic envelope models; Spark re-validates what it reads
from Kafka with :func:`validate_events`. Both read ``transform_rules.json``. This corpus
(valid events of every type and one breach of each rule) must get the same verdict from
both, so a record is never accepted by one path and quarantined by the other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cinepulse_common.events import parse_event
from cinepulse_common.rules import active_rules
from tests.factories import event, with_field

pytestmark = pytest.mark.integration

pyspark = pytest.importorskip("pyspark")


def corpus() -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    stamped = {"received_at": now.isoformat()}
    rate, watch = event("rate") | stamped, event("watch") | stamped
    comment, click = event("comment") | stamped, event("click") | stamped
    cases: dict[str, Any] = {
        "valid rate": rate,
        "valid watch": watch,
        "valid comment": comment,
        "valid click": click,
        "valid click alias": with_field(click, "payload.target", "thumbnail"),
        "valid rating 0.5": with_field(rate, "payload.rating", 0.5),
        "valid rating 5": with_field(rate, "payload.rating", 5),
        "valid without event_id": with_field(rate, "event_id", ...),
        "valid without session": with_field(rate, "session_id", ...),
        "valid position within tolerance": with_field(
            watch, "payload", {"position_seconds": 5403, "duration_seconds": 5400}
        ),
        "valid unicode comment": with_field(
            comment, "payload.text", "e\u0301le\u0301gant \U0001f3ac"
        ),
        "rating off step": with_field(rate, "payload.rating", 4.3),
        "rating tiny off step": with_field(rate, "payload.rating", 4.50001),
        "rating too high": with_field(rate, "payload.rating", 5.5),
        "rating zero": with_field(rate, "payload.rating", 0),
        "rating missing": with_field(rate, "payload", {}),
        "unknown type": with_field(rate, "event_type", "purchase"),
        "missing type": with_field(rate, "event_type", ...),
        "bad event_id": with_field(rate, "event_id", "nope"),
        "missing user": with_field(rate, "user_id", ...),
        "user with space": with_field(rate, "user_id", "a b"),
        "user too long": with_field(rate, "user_id", "u" * 129),
        "movie zero": with_field(rate, "movie_id", 0),
        "movie too big": with_field(rate, "movie_id", 2**31),
        "missing movie": with_field(rate, "movie_id", ...),
        "future": with_field(rate, "occurred_at", (now + timedelta(hours=1)).isoformat()),
        "naive time": with_field(rate, "occurred_at", "2026-01-01T10:00:00"),
        "not a time": with_field(rate, "occurred_at", "yesterday"),
        "negative position": with_field(
            watch, "payload", {"position_seconds": -1, "duration_seconds": 60}
        ),
        "zero duration": with_field(
            watch, "payload", {"position_seconds": 0, "duration_seconds": 0}
        ),
        "position beyond": with_field(
            watch, "payload", {"position_seconds": 999, "duration_seconds": 60}
        ),
        "duration too long": with_field(
            watch, "payload", {"position_seconds": 1, "duration_seconds": 90000}
        ),
        "empty comment": with_field(comment, "payload.text", "   "),
        "long comment": with_field(comment, "payload.text", "x" * 5001),
        "valid: 5,200 code points, 2,600 characters after NFC": with_field(
            comment, "payload.text", "e\u0301" * 2600
        ),
        "unknown target": with_field(click, "payload.target", "buy"),
        "missing payload": with_field(rate, "payload", ...),
        "extra field": with_field(rate, "coupon", "FREE"),
        "extra payload field": with_field(rate, "payload.text", "hi"),
        "session too long": with_field(rate, "session_id", "s" * 129),
        "NUL in the session": with_field(rate, "session_id", "s\x001"),
        "NUL in a comment": with_field(comment, "payload.text", "nice\x00 film"),
    }
    out = [(name, json.dumps(data)) for name, data in cases.items()]
    out += [("not json", "{broken"), ("json array", "[1, 2]")]
    return out


def test_spark_and_the_envelope_models_agree_on_every_case(spark: Any) -> None:
    from cinepulse_spark_jobs.transforms import parse_events, split_valid, validate_events

    rules = active_rules()
    cases = corpus()
    records = spark.createDataFrame(
        [(name, value.encode()) for name, value in cases], "case string, value binary"
    )
    validated = validate_events(parse_events(records.withColumnRenamed("case", "topic")), rules)
    verdicts = {r["topic"]: r["quarantine_reason"] for r in validated.collect()}

    disagreements = []
    for name, value in cases:
        try:
            parse_event(value, rules)
            model_ok = True
        except ValidationError:
            model_ok = False
        spark_ok = verdicts[name] is None
        if model_ok != spark_ok:
            disagreements.append((name, model_ok, verdicts[name]))
    assert not disagreements, disagreements
    valid, quarantined = split_valid(validated)
    assert valid.count() + quarantined.count() == len(cases)
    assert quarantined.filter("quarantine_reason IS NULL").count() == 0
    assert sum(1 for n, _ in cases if n.startswith("valid")) == valid.count()
