"""Spark's rule checks agree with the envelope models, event for event (real Spark, local).

The gateway validates with the pydantic envelope models; Spark re-validates what it reads
from Kafka with :func:`validate_events`. Both read ``transform_rules.json``. This corpus
(valid events of every type and one breach of each rule) must get the same verdict from
both, so a record is never accepted by one path and quarantined by the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cinepulse_common.events import parse_event
from cinepulse_common.rules import active_rules
from tests.factories import event

pytestmark = pytest.mark.integration

pyspark = pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("transforms-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


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
        "valid click alias": _with(click, "payload.target", "thumbnail"),
        "valid rating 0.5": _with(rate, "payload.rating", 0.5),
        "valid rating 5": _with(rate, "payload.rating", 5),
        "valid without event_id": _with(rate, "event_id", ...),
        "valid without session": _with(rate, "session_id", ...),
        "valid position within tolerance": _with(
            watch, "payload", {"position_seconds": 5403, "duration_seconds": 5400}
        ),
        "valid unicode comment": _with(comment, "payload.text", "e\u0301le\u0301gant \U0001f3ac"),
        "rating off step": _with(rate, "payload.rating", 4.3),
        "rating tiny off step": _with(rate, "payload.rating", 4.50001),
        "rating too high": _with(rate, "payload.rating", 5.5),
        "rating zero": _with(rate, "payload.rating", 0),
        "rating missing": _with(rate, "payload", {}),
        "unknown type": _with(rate, "event_type", "purchase"),
        "missing type": _with(rate, "event_type", ...),
        "bad event_id": _with(rate, "event_id", "nope"),
        "missing user": _with(rate, "user_id", ...),
        "user with space": _with(rate, "user_id", "a b"),
        "user too long": _with(rate, "user_id", "u" * 129),
        "movie zero": _with(rate, "movie_id", 0),
        "movie too big": _with(rate, "movie_id", 2**31),
        "missing movie": _with(rate, "movie_id", ...),
        "future": _with(rate, "occurred_at", (now + timedelta(hours=1)).isoformat()),
        "naive time": _with(rate, "occurred_at", "2026-01-01T10:00:00"),
        "not a time": _with(rate, "occurred_at", "yesterday"),
        "negative position": _with(
            watch, "payload", {"position_seconds": -1, "duration_seconds": 60}
        ),
        "zero duration": _with(watch, "payload", {"position_seconds": 0, "duration_seconds": 0}),
        "position beyond": _with(
            watch, "payload", {"position_seconds": 999, "duration_seconds": 60}
        ),
        "duration too long": _with(
            watch, "payload", {"position_seconds": 1, "duration_seconds": 90000}
        ),
        "empty comment": _with(comment, "payload.text", "   "),
        "long comment": _with(comment, "payload.text", "x" * 5001),
        "valid: 5,200 code points, 2,600 characters after NFC": _with(
            comment, "payload.text", "e\u0301" * 2600
        ),
        "unknown target": _with(click, "payload.target", "buy"),
        "missing payload": _with(rate, "payload", ...),
        "extra field": _with(rate, "coupon", "FREE"),
        "extra payload field": _with(rate, "payload.text", "hi"),
        "session too long": _with(rate, "session_id", "s" * 129),
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
