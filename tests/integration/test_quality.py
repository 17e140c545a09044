"""Reconciliation against the real stores: records produced to Kafka, archived to MongoDB by
the archiver's own document builder (dead letters by its own encoder), modelled into
PostgreSQL through the shared load step; then pieces are removed and the reconciliation
must name exactly those."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cinepulse_archiver.documents import Source, dead_letter, to_document
from cinepulse_common import topics
from cinepulse_common.kafka import make_producer
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.settings import KafkaSettings, MongoSettings, PostgresSettings
from cinepulse_common.validation import source_event_id
from cinepulse_common.warehouse import EVENT_COLUMNS, load_events
from cinepulse_quality.__main__ import EXIT_DRIFT, EXIT_OK, EXIT_UNREACHABLE, main
from tests.factories import event

pytestmark = pytest.mark.integration

Position = tuple[str, int, int]


def _produce(k: KafkaSettings, items: list[tuple[str, bytes]]) -> list[Position]:
    producer = make_producer(k)
    positions: list[Position] = []
    for topic, value in items:
        producer.produce(
            k.topic(topic),
            value=value,
            key=b"u1",
            on_delivery=lambda err, m: positions.append((m.topic(), m.partition(), m.offset())),
        )
        producer.flush(10)
    assert len(positions) == len(items)
    return positions


def _modelled(e: dict[str, Any], pos: Position, event_id: str) -> tuple[Any, ...]:
    at = datetime.fromisoformat(e["occurred_at"])
    values = {
        "event_id": uuid.UUID(event_id),
        "event_type": "rate",
        "user_id": e["user_id"],
        "movie_id": e["movie_id"],
        "date_key": int(at.strftime("%Y%m%d")),
        "occurred_at": at,
        "received_at": at,
        "session_id": e.get("session_id"),
        "source_topic": pos[0],
        "source_partition": pos[1],
        "source_offset": pos[2],
        "payload": json.dumps(e["payload"]),
        "rating": e["payload"]["rating"],
    }
    return tuple(values.get(c) for c in EVENT_COLUMNS)


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    mongo_settings: MongoSettings,
) -> None:
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("CINEPULSE_KAFKA__TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", pg_settings.dsn.get_secret_value())
    monkeypatch.setenv("CINEPULSE_MONGO__URL", mongo_settings.url.get_secret_value())
    monkeypatch.setenv("CINEPULSE_MONGO__DATABASE", mongo_settings.database)
    monkeypatch.setenv("CINEPULSE_GRACE_S", "0")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["reconcile", *args])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}, captured.err


def test_every_record_accounted_for_then_each_gap_named(
    env: None,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    mongo_settings: MongoSettings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    valid = [event("rate", user_id=f"u{i}") for i in range(12)]
    no_id = event("rate", user_id="anon")
    del no_id["event_id"]
    items = [(topics.USER_RATING_LOG, json.dumps(e).encode()) for e in valid]
    items.append((topics.USER_RATING_LOG, json.dumps(valid[0]).encode()))  # a resent copy
    items.append((topics.USER_RATING_LOG, json.dumps(no_id).encode()))
    items.append((topics.USER_CLICK_LOG, b"not json at all"))
    positions = _produce(kafka_settings, items)
    end = datetime.now(UTC) + timedelta(seconds=1)

    # the archiver's part: documents, and a dead letter for the record it cannot store
    producer = make_producer(kafka_settings)
    with make_client(mongo_settings) as client:
        raw = client[mongo_settings.database]["user_logs"]
        for (_topic, value), pos in zip(items, positions, strict=True):
            source = Source(pos[0], pos[1], pos[2], b"u1", None)
            if value == b"not json at all":
                body = dead_letter(source, value, "value is not JSON", "not_json")
                producer.produce(kafka_settings.topic(topics.DEAD_LETTER), value=body)
                continue
            _collection, doc = to_document(source, value, datetime.now(UTC), movie_topic=False)
            raw.insert_one(doc)
    producer.flush(10)

    # Spark's part: every valid event once (the resent copy deduplicated), the record without
    # an id under the id derived from its position, the non-JSON record quarantined
    rows = [_modelled(e, p, e["event_id"]) for e, p in zip(valid, positions[:12], strict=True)]
    rows.append(_modelled(no_id, positions[13], source_event_id(*positions[13])))
    quarantined = [
        (None, None, *positions[14], "not json at all", "not_json", "value is not JSON"),
    ]
    with connect(pg_settings) as conn:
        load_events(conn, rows, quarantined, source_flag="spark")
        conn.commit()

    window = ["--from", start.isoformat(), "--to", end.isoformat()]
    code, report, table = _run(window, capsys)
    assert code == EXIT_OK, report
    assert "every record accounted for" in table
    assert report["counts"] == {
        "kafka_records": 15,
        "archived": 14,
        "dead_lettered": 1,
        "staged": 13,
        "quarantined": 1,
        "facts": 13,
    }
    assert report["differences"]["deduplicated"] == 1
    assert not report["drift"]

    # now lose a raw document, a staged event, and a fact: each is named
    lost_doc, unmodelled, no_fact = positions[3], valid[5], valid[7]
    with make_client(mongo_settings) as client:
        client[mongo_settings.database]["user_logs"].delete_one(
            {"_id": f"{lost_doc[0]}:{lost_doc[1]}:{lost_doc[2]}"}
        )
    with connect(pg_settings) as conn:
        conn.execute("DELETE FROM fact_rating WHERE event_id = %s", (unmodelled["event_id"],))
        conn.execute("DELETE FROM stg_user_logs WHERE event_id = %s", (unmodelled["event_id"],))
        conn.execute("DELETE FROM fact_rating WHERE event_id = %s", (no_fact["event_id"],))
        conn.commit()
    acked = tmp_path / "acked.txt"
    missing_ack = str(uuid.uuid4())
    acked.write_text("# ids the client got 202 for\n" + valid[1]["event_id"] + "\n" + missing_ack)
    code, report, table = _run([*window, "--acknowledged", str(acked)], capsys)
    assert code == EXIT_DRIFT
    assert "DRIFT" in table
    assert report["drift"]
    d, ex = report["differences"], report["examples"]
    assert d["not_archived"] == 1
    assert ex["not_archived"] == ["{}:{}:{}".format(*lost_doc)]
    assert d["not_modelled"] == 1
    assert ex["not_modelled"] == ["{}:{}:{}".format(*positions[5])]
    assert d["staged_without_fact"] == 1
    assert ex["staged_without_fact"][0].startswith(no_fact["event_id"])
    assert d["acknowledged_not_in_kafka"] == 1
    assert ex["acknowledged_not_in_kafka"] == [missing_ack]


def test_a_promoted_fallback_run_is_accounted_for(
    env: None,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    mongo_settings: MongoSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Spark was down: the pandas fallback modelled the archived records apart, then an admin
    promoted the run. Promotion registers the run's events in staging at the positions the
    run read (the event-id registry), so the promoted records are accounted for as staged,
    with their facts, not reported as ``not_modelled`` drift; a Spark fact that lost its
    staging row still is."""
    from cinepulse_common.rules import active_rules
    from cinepulse_pandas_fallback.job import run_window
    from cinepulse_pandas_fallback.runs import promote
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings

    start = datetime.now(UTC) - timedelta(seconds=1)
    events = [event("rate", user_id=f"u{i}") for i in range(4)]
    positions = _produce(
        kafka_settings, [(topics.USER_RATING_LOG, json.dumps(e).encode()) for e in events]
    )
    end = datetime.now(UTC) + timedelta(seconds=1)
    arrived = datetime.now(UTC)
    with make_client(mongo_settings) as client:
        raw = client[mongo_settings.database]["user_logs"]
        for e, pos in zip(events, positions, strict=True):
            source = Source(pos[0], pos[1], pos[2], b"u1", None)
            raw.insert_one(
                to_document(source, json.dumps(e).encode(), arrived, movie_topic=False)[1]
            )
    # Spark modelled the first event; then it stopped
    with connect(pg_settings) as conn:
        load_events(
            conn,
            [_modelled(events[0], positions[0], events[0]["event_id"])],
            (),
            source_flag="spark",
        )
        conn.commit()
    fallback = PandasFallbackSettings(postgres=pg_settings, mongo=mongo_settings)
    run = run_window(
        fallback,
        active_rules(),
        arrived - timedelta(seconds=1),
        arrived + timedelta(seconds=1),
        progress=None,
    )
    window = ["--from", start.isoformat(), "--to", end.isoformat()]

    code, report, _ = _run(window, capsys)
    assert code == EXIT_OK, report
    assert report["differences"]["pending_promotion"] == 3

    promote(pg_settings, run.run_id, by="ada")
    code, report, table = _run(window, capsys)
    assert code == EXIT_OK, report
    assert report["differences"]["promoted"] == 0
    assert report["differences"]["pending_promotion"] == 0
    assert report["counts"]["staged"] == 4 and report["counts"]["facts"] == 4
    assert "every record accounted for" in table

    # a Spark fact whose staging row is gone is still a gap, promotion or not
    with connect(pg_settings) as conn:
        conn.execute("DELETE FROM stg_user_logs WHERE event_id = %s", (events[0]["event_id"],))
        conn.commit()
    code, report, _ = _run(window, capsys)
    assert code == EXIT_DRIFT, report
    assert report["examples"]["not_modelled"] == ["{}:{}:{}".format(*positions[0])]
    assert report["counts"]["staged"] == 3


def test_bad_arguments_and_unreachable_stores(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["reconcile", "--from", "2026-11-02", "--to", "2026-11-01"]) == 2
    assert "must be before" in capsys.readouterr().err
    bad = tmp_path / "ids.txt"
    bad.write_text("not-a-uuid\n")
    assert main(["reconcile", "--acknowledged", str(bad)]) == 2
    assert "ids.txt:1" in capsys.readouterr().err
    monkeypatch.delenv("CINEPULSE_POSTGRES__DSN")
    assert main(["reconcile"]) == 2
    assert "CINEPULSE_POSTGRES" in capsys.readouterr().err
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("CINEPULSE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("CINEPULSE_READ_TIMEOUT_S", "3")
    assert main(["reconcile", "--from", "2026-11-01", "--to", "2026-11-02"]) == EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err


def test_every_mongo_lookup_finds_the_same_documents(
    mongo_settings: MongoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyed lookups, one scan, and auto (which scans only on FerretDB past one chunk) agree
    on the live MongoDB-protocol server, present and missing positions alike."""
    from cinepulse_quality import sources

    monkeypatch.setattr(sources, "CHUNK", 50)  # several chunks from a small collection
    with make_client(mongo_settings) as client:
        coll = client[mongo_settings.database]["user_logs"]
        stored = [("user_rating_log", i % 3, i) for i in range(180)]
        coll.insert_many([{"_id": f"{t}:{p}:{o}", "n": o} for t, p, o in stored])
        wanted = stored[::2] + [("user_rating_log", 0, 10_000 + i) for i in range(40)]
        expected = set(stored[::2])
        found = {how: sources.read_mongo(coll, wanted, how) for how in ("keys", "scan", "auto")}
        ferret = sources.is_ferretdb(coll)
    assert found["keys"] == expected
    assert found["scan"] == expected
    assert found["auto"] == expected
    # the local stack runs FerretDB unless a mongod is on PATH
    assert ferret == (shutil.which("mongod") is None)
