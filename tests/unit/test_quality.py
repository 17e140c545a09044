"""The reconciliation's comparison (pure): every record accounted for, or named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cinepulse_common.validation import source_event_id
from cinepulse_quality.__main__ import UsageError, read_acknowledged, window
from cinepulse_quality.reconcile import KafkaRecord, Observed, compare, event_id_of
from cinepulse_quality.settings import QualitySettings

T0 = datetime(2026, 11, 29, 8, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
IDS = [str(uuid.uuid4()) for _ in range(4)]


def _pos(offset: int) -> tuple[str, int, int]:
    return ("user_rating_log", 0, offset)


def _consistent() -> Observed:
    records = [KafkaRecord(_pos(i), IDS[i]) for i in range(3)]
    return Observed(
        records=records,
        archived={_pos(i) for i in range(3)},
        staged={IDS[i]: _pos(i) for i in range(3)},
        fact_ids=set(IDS[:3]),
    )


def test_event_id_of_follows_the_pipeline() -> None:
    pos = _pos(7)
    upper = IDS[0].upper()
    assert event_id_of({"event_id": upper}, pos) == IDS[0]
    assert event_id_of({"event_type": "rate"}, pos) == source_event_id(*pos)
    assert event_id_of({"event_id": "not-a-uuid"}, pos) is None
    assert event_id_of({"event_id": 12}, pos) is None
    assert event_id_of([1, 2], pos) is None
    assert event_id_of(None, pos) is None


def test_consistent_window() -> None:
    report = compare(_consistent(), T0, T1)
    assert not report.drift
    assert report.counts == {
        "kafka_records": 3,
        "archived": 3,
        "dead_lettered": 0,
        "staged": 3,
        "quarantined": 0,
        "facts": 3,
    }
    assert set(report.differences.values()) == {0}
    assert report.examples == {}


def test_duplicates_dead_letters_and_quarantine_are_accounted_for() -> None:
    o = _consistent()
    o.records += [KafkaRecord(_pos(3), IDS[0]), KafkaRecord(_pos(4), None)]
    o.archived.add(_pos(3))
    o.dead_lettered.add(_pos(4))
    o.quarantined.add(_pos(4))
    report = compare(o, T0, T1)
    assert not report.drift
    assert report.differences["deduplicated"] == 1
    assert report.examples["deduplicated"] == ["user_rating_log:0:3"]
    assert report.counts["dead_lettered"] == 1
    assert report.counts["quarantined"] == 1


def test_each_gap_is_named() -> None:
    o = _consistent()
    o.archived.discard(_pos(1))
    del o.staged[IDS[2]]
    o.fact_ids.discard(IDS[0])
    o.acknowledged = {IDS[0], IDS[3]}
    report = compare(o, T0, T1)
    assert report.drift
    assert report.examples["not_archived"] == ["user_rating_log:0:1"]
    assert report.examples["not_modelled"] == ["user_rating_log:0:2"]
    assert report.examples["staged_without_fact"] == [f"{IDS[0]} (user_rating_log:0:0)"]
    assert report.examples["acknowledged_not_in_kafka"] == [IDS[3]]
    assert report.as_dict()["drift"] is True


def test_pending_fallback_is_reported_not_drift() -> None:
    o = _consistent()
    del o.staged[IDS[2]]
    o.pending_fallback_ids.add(IDS[2])
    report = compare(o, T0, T1)
    assert not report.drift
    assert report.differences["pending_promotion"] == 1


def test_a_promoted_fallback_fact_without_staging_is_reported_not_drift() -> None:
    """Promotion writes facts, not staging rows: the fact of a promoted run's event accounts
    for its record. A fact without staging that no promoted run wrote is still a gap."""
    o = _consistent()
    del o.staged[IDS[1]]
    del o.staged[IDS[2]]
    o.promoted_ids.add(IDS[2])
    report = compare(o, T0, T1)
    assert report.drift
    assert report.examples["not_modelled"] == ["user_rating_log:0:1"]
    assert report.examples["promoted"] == ["user_rating_log:0:2"]
    o.promoted_ids.add(IDS[1])
    report = compare(o, T0, T1)
    assert not report.drift and report.differences["promoted"] == 2
    o.fact_ids.discard(IDS[1])  # promoted once, then its fact is gone: a gap again
    assert compare(o, T0, T1).examples["not_modelled"] == ["user_rating_log:0:1"]


def test_examples_are_capped() -> None:
    o = Observed(records=[KafkaRecord(_pos(i), None) for i in range(50)])
    report = compare(o, T0, T1, max_examples=5)
    assert report.differences["not_archived"] == 50
    assert len(report.examples["not_archived"]) == 5


def test_read_acknowledged(tmp_path: Path) -> None:
    f = tmp_path / "acked"
    f.write_text(f"# header\n\n{IDS[0].upper()}\n  {IDS[1]}  \n")
    assert read_acknowledged(f) == {IDS[0], IDS[1]}
    f.write_text(f"{IDS[0]}\nbogus\n")
    with pytest.raises(UsageError, match="acked:2"):
        read_acknowledged(f)
    with pytest.raises(UsageError, match="cannot read"):
        read_acknowledged(tmp_path / "absent")


def test_default_window_ends_a_grace_before_now() -> None:
    s = QualitySettings(
        kafka={"bootstrap_servers": "k:9092"},
        postgres={"dsn": "postgresql://x@h/db"},
        mongo={"url": "mongodb://h"},
        grace_s=300,
        window_s=3600,
    )
    start, end = window(s, None, None, T1)
    assert end == T1 - timedelta(seconds=300)
    assert start == end - timedelta(hours=1)
    with pytest.raises(UsageError, match="must be before"):
        window(s, T1, T0, T1)
