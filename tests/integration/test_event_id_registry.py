"""One event-id registry across event types (issue 21), against the live PostgreSQL: Spark's
landing-table load, the shared load of a fallback run or replay, promotion, and migration
0011's registration of facts promoted before the registry.

The rule: a fact only for an id registered (staged) by the same load; a copy of a registered
id with other content (type, user, movie, time, session, payload) is quarantined as
``event_id_conflict`` with the fields that differ; an exact resend (only ``received_at`` and
the source position differ) is dropped silently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from cinepulse_common.postgres import connect
from cinepulse_common.settings import MongoSettings, PostgresSettings
from cinepulse_common.validation import EVENT_ID_CONFLICT
from cinepulse_common.warehouse import (
    EVENT_COLUMNS,
    FACT_TABLE,
    ensure_batch_tables,
    load_events,
    load_events_from_tables,
    promote_run,
)
from cinepulse_migrations.cli import upgrade
from cinepulse_quality.reconcile import KafkaRecord, Observed, compare
from cinepulse_quality.sources import read_postgres
from tests.factories import event
from tests.integration.test_fallback import ARRIVED, WINDOW, _archive

pytestmark = pytest.mark.integration

FACTS = tuple(FACT_TABLE.values())
T0 = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
TOPIC = {"watch": "user_watch_log", "rate": "user_rating_log", "comment": "user_comment_log"}
TOPIC |= {"click": "user_click_log"}
EXTRA: dict[str, dict[str, Any]] = {
    "watch": {
        "position_seconds": 60,
        "duration_seconds": 600,
        "completion_ratio": 0.1,
        "completed": False,
    },
    "rate": {"rating": 4.0},
    "comment": {"comment_text": "fine"},
    "click": {"target": "poster"},
}
PAYLOAD = {
    "watch": {"position_seconds": 60, "duration_seconds": 600},
    "rate": {"rating": 4.0},
    "comment": {"text": "fine"},
    "click": {"target": "poster"},
}


def _row(event_id: str, etype: str, offset: int, **over: Any) -> tuple[Any, ...]:
    """A modelled event in the load step's column order (Kafka position ``offset`` on its
    type's topic)."""
    values: dict[str, Any] = {
        "event_id": event_id,
        "event_type": etype,
        "user_id": "u-1",
        "movie_id": 603,
        "date_key": 20261120,
        "occurred_at": T0,
        "received_at": T0 + timedelta(seconds=1),
        "session_id": "s-1",
        "source_topic": TOPIC[etype],
        "source_partition": 0,
        "source_offset": offset,
        **EXTRA[etype],
    }
    values.update(over)
    values["payload"] = json.dumps(over.get("payload", PAYLOAD[etype]))
    return tuple(values.get(c) for c in EVENT_COLUMNS)


def _spark(pg: PostgresSettings, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    """One micro-batch as the streaming job loads it: landed, then one transaction."""
    with connect(pg) as conn:
        events, quarantine = ensure_batch_tables(conn, "spark_batch")
        conn.execute(sql.SQL("TRUNCATE {}, {}").format(*map(sql.Identifier, (events, quarantine))))
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(events),
                    sql.SQL(", ").join(map(sql.Identifier, (*EVENT_COLUMNS, "is_late"))),
                )
            ) as copy,
        ):
            for row in rows:
                copy.write_row((*row, False))
        return load_events_from_tables(conn, "spark_batch", source_flag="spark")


def _facts(pg: PostgresSettings, event_id: str) -> list[tuple[str, str]]:
    """(fact table, source flag) of every fact of ``event_id``."""
    union = " UNION ALL ".join(
        f"SELECT '{t}', source_flag::text FROM {t} WHERE event_id = %(id)s" for t in FACTS
    )
    with connect(pg) as conn:
        return [(str(t), str(f)) for t, f in conn.execute(union, {"id": event_id}).fetchall()]


def _held(pg: PostgresSettings, schema: str = "public") -> list[tuple[Any, ...]]:
    with connect(pg) as conn:
        return conn.execute(
            f"SELECT event_id::text, event_type, source_offset, rule, reason, raw"
            f" FROM {schema}.quarantine ORDER BY source_topic, source_offset"
        ).fetchall()


def test_the_same_id_as_another_type_in_a_later_batch_is_quarantined(
    pg_settings: PostgresSettings,
) -> None:
    x = str(uuid4())
    first = _spark(pg_settings, [_row(x, "watch", 0)])
    assert first["fact_watch"] == 1 and first["stg_user_logs"] == 1
    later = _spark(pg_settings, [_row(x, "rate", 7)])
    assert _facts(pg_settings, x) == [("fact_watch", "spark")]  # not a second fact
    assert later["fact_rating"] == 0 and later[f"quarantined:{EVENT_ID_CONFLICT}"] == 1
    ((held_id, etype, offset, rule, reason, raw),) = _held(pg_settings)
    assert (held_id, etype, offset, rule) == (x, "rate", 7, EVENT_ID_CONFLICT)
    assert reason.startswith(EVENT_ID_CONFLICT + ":")
    assert "differs in event_type, payload (registered as watch by spark)" in reason
    assert json.loads(raw)["payload"] == {"rating": 4.0}
    # the batch replayed (a restart) writes nothing twice
    again = _spark(pg_settings, [_row(x, "rate", 7)])
    assert again["quarantine"] == 0 and len(_held(pg_settings)) == 1
    # the reconciliation accounts for both records: one staged (with its fact), one held
    records = [
        KafkaRecord(("user_watch_log", 0, 0), x),
        KafkaRecord(("user_rating_log", 0, 7), x),
    ]
    observed = Observed(records=records, archived={r.position for r in records})
    with connect(pg_settings) as conn:
        read_postgres(conn, observed)
    report = compare(observed, T0, T0)
    assert not report.drift, report.differences
    assert report.counts["staged"] == 1 and report.counts["quarantined"] == 1


def test_the_same_id_with_other_content_within_one_batch(pg_settings: PostgresSettings) -> None:
    x, y, z = str(uuid4()), str(uuid4()), str(uuid4())
    written = _spark(
        pg_settings,
        [
            _row(x, "rate", 3, payload={"rating": 4.5}, rating=4.5),  # later: the conflict
            _row(x, "rate", 2),  # first by position: the fact
            _row(y, "click", 0),
            _row(y, "click", 1, user_id="u-2", movie_id=604),  # another user and movie
            # another type on another topic: the first by (topic, partition, offset) wins,
            # the choice the fallback makes too (not the order of arrival)
            _row(z, "watch", 5),
            _row(z, "click", 5, received_at=T0 + timedelta(minutes=1)),
        ],
    )
    assert written["fact_rating"] == 1 and written["fact_click"] == 2
    assert written["fact_watch"] == 0 and _facts(pg_settings, z) == [("fact_click", "spark")]
    with connect(pg_settings) as conn:
        assert conn.execute(
            "SELECT rating::text, source_offset FROM fact_rating WHERE event_id = %s", (x,)
        ).fetchone() == ("4.0", 2)
    held = {(h[0], h[2]): h[4] for h in _held(pg_settings)}
    assert set(held) == {(x, 3), (y, 1), (z, 5)}
    assert held[(x, 3)].endswith("differs in payload (registered as rate by spark)")
    assert "differs in user_id, movie_id " in held[(y, 1)]


def test_an_exact_resend_is_silent_and_a_changed_one_is_not(
    pg_settings: PostgresSettings,
) -> None:
    x, y = str(uuid4()), str(uuid4())
    _spark(pg_settings, [_row(x, "comment", 0), _row(y, "watch", 0)])
    later = T0 + timedelta(hours=1)
    written = _spark(
        pg_settings,
        [
            # the same content: a new arrival time (set by the gateway) and Kafka position
            _row(x, "comment", 5, received_at=later),
            _row(x, "comment", 6, received_at=later),
            # the same id, sent as a click by another writer
            _row(y, "click", 9, user_id="u-9"),
        ],
    )
    assert sum(written[t] for t in FACTS) == 0 and written["stg_user_logs"] == 0
    assert [(h[0], h[1]) for h in _held(pg_settings)] == [(y, "click")]
    assert (
        "differs in event_type, user_id, payload (registered as watch" in _held(pg_settings)[0][4]
    )
    assert _facts(pg_settings, x) == [("fact_comment", "spark")]


def _run(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> str:
    """A succeeded fallback run holding ``rows``."""
    run = f"fallback-test-{uuid4().hex[:8]}"
    conn.execute(
        "INSERT INTO fallback.runs (run_id, window_start, window_end, status)"
        " VALUES (%s, now() - interval '1 hour', now(), 'succeeded')",
        (run,),
    )
    load_events(conn, rows, source_flag="pandas", schema="fallback", run_id=run)
    return run


def test_promotion_after_spark_quarantines_a_changed_type(pg_settings: PostgresSettings) -> None:
    x, y, z = str(uuid4()), str(uuid4()), str(uuid4())
    with connect(pg_settings) as conn:
        run = _run(conn, [_row(x, "rate", 1), _row(y, "rate", 2), _row(z, "click", 0)])
    # Spark caught up after the run was written: x came to it as a watch
    _spark(pg_settings, [_row(x, "watch", 0), _row(z, "click", 0)])
    with connect(pg_settings) as conn:
        dry = promote_run(conn, run, dry_run=True)
        done = promote_run(conn, run)
    assert dry[EVENT_ID_CONFLICT] == {"inserted": 1, "present": 0}
    assert done[EVENT_ID_CONFLICT] == {"inserted": 1, "present": 0}
    assert done["stg_user_logs"] == {"inserted": 1, "present": 2}
    assert done["fact_rating"] == {"inserted": 1, "present": 1}
    assert _facts(pg_settings, x) == [("fact_watch", "spark")]
    assert _facts(pg_settings, y) == [("fact_rating", "pandas")]
    assert _facts(pg_settings, z) == [("fact_click", "spark")]  # the same content: present
    ((held_id, etype, _, rule, reason, _raw),) = _held(pg_settings)
    assert (held_id, etype, rule) == (x, "rate", EVENT_ID_CONFLICT)
    assert reason.endswith("differs in event_type, payload (registered as watch by spark)")


def test_spark_after_promotion_quarantines_a_changed_type(pg_settings: PostgresSettings) -> None:
    x = str(uuid4())
    with connect(pg_settings) as conn:
        promote_run(conn, _run(conn, [_row(x, "watch", 0)]))
    with connect(pg_settings) as conn:  # promotion registered the id, with its content
        assert conn.execute(
            "SELECT event_type, source_flag, payload FROM stg_user_logs WHERE event_id = %s",
            (x,),
        ).fetchone() == ("watch", "pandas", PAYLOAD["watch"])
    written = _spark(pg_settings, [_row(x, "rate", 4), _row(x, "watch", 0)])
    assert sum(written[t] for t in FACTS) == 0
    assert _facts(pg_settings, x) == [("fact_watch", "pandas")]
    assert [(h[0], h[1], h[3]) for h in _held(pg_settings)] == [(x, "rate", EVENT_ID_CONFLICT)]


def test_the_fallback_run_applies_the_rule_within_itself_and_against_the_main_registry(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    from cinepulse_common.rules import active_rules
    from cinepulse_pandas_fallback.job import run_window
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings

    occurred = (ARRIVED - timedelta(minutes=5)).isoformat()
    main = event("watch", occurred_at=occurred)  # in the main registry (Spark wrote it)
    watch = event("watch", occurred_at=occurred, received_at=occurred)
    records = [
        watch,
        # within the run: the same id as a click
        {
            **watch,
            "event_type": "click",
            "payload": {"target": "poster"},
            "received_at": ARRIVED.isoformat(),
        },
        {**main, "user_id": "someone-else"},  # against the main registry
        {**watch, "received_at": ARRIVED.isoformat()},  # an exact resend
    ]
    _archive(mongo_settings, records[:1], received_at=ARRIVED - timedelta(minutes=4))
    _archive(mongo_settings, records[1:], start=1)
    with connect(pg_settings) as conn:
        load_events(
            conn,
            [
                _row(
                    main["event_id"],
                    "watch",
                    0,
                    occurred_at=datetime.fromisoformat(occurred),
                    payload=main["payload"],
                    user_id=main["user_id"],
                )
            ],
            source_flag="spark",
        )
    settings = PandasFallbackSettings(postgres=pg_settings, mongo=mongo_settings)
    rules = active_rules()
    for chunk_size in (1000, 1):
        summary = run_window(settings, rules, *WINDOW, progress=None, chunk_size=chunk_size)
        with connect(pg_settings) as conn:
            facts = conn.execute(
                " UNION ALL ".join(
                    f"SELECT event_id::text FROM fallback.{t} WHERE run_id = %(r)s" for t in FACTS
                ),
                {"r": summary.run_id},
            ).fetchall()
            held = conn.execute(
                "SELECT event_id::text, event_type, rule, reason FROM fallback.quarantine"
                " WHERE run_id = %s ORDER BY event_type",
                (summary.run_id,),
            ).fetchall()
        # one fact for the two types, in one chunk as across chunks: a run reads the archive
        # by position, so the first copy is the click (its topic sorts first); the watch and
        # its exact resend differ from it
        assert sorted(f[0] for f in facts) == [watch["event_id"]]
        assert summary.written["fact_click"] == 1 and summary.written["fact_watch"] == 0
        assert summary.quarantined == {EVENT_ID_CONFLICT: 3}, summary.quarantined
        assert sorted(h[:3] for h in held) == sorted(
            [
                (watch["event_id"], "watch", EVENT_ID_CONFLICT),
                (watch["event_id"], "watch", EVENT_ID_CONFLICT),
                (main["event_id"], "watch", EVENT_ID_CONFLICT),
            ]
        )
        assert any(h[3].endswith("differs in user_id (registered as watch by spark)") for h in held)
        assert any(h[3].endswith("(registered as click by pandas)") for h in held)


def test_migration_registers_facts_promoted_without_staging(empty_pg_dsn: str) -> None:
    """Facts a run promoted before 0011 have no staging row: the migration registers them
    (payload unknown) and a run's facts too; then the rule holds for those ids."""
    upgrade(empty_pg_dsn, "0010")
    x, r = str(uuid4()), str(uuid4())
    with psycopg.connect(empty_pg_dsn) as conn:
        conn.execute(
            "INSERT INTO dim_date (date_key, date, year, quarter, month, day, iso_week,"
            " day_of_week, is_weekend) VALUES (20261120, '2026-11-20', 2026, 4, 11, 20, 47, 5,"
            " false) ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO dim_user (user_id, first_seen_at, last_seen_at, source_flag)"
            " VALUES ('u-1', %s, %s, 'pandas')",
            (T0, T0),
        )
        conn.execute(
            "INSERT INTO fact_watch (event_id, user_id, movie_id, date_key, occurred_at,"
            " session_id, source_flag, position_seconds, duration_seconds, completion_ratio,"
            " completed) VALUES (%s, 'u-1', 603, 20261120, %s, 's-1', 'pandas', 60, 600, 0.1,"
            " false)",
            (x, T0),
        )
        conn.execute(
            "INSERT INTO fallback.runs (run_id, window_start, window_end, status)"
            " VALUES ('old-run', now() - interval '1 hour', now(), 'succeeded')"
        )
        conn.execute(
            "INSERT INTO fallback.fact_click (run_id, event_id, user_id, movie_id, date_key,"
            " occurred_at, session_id, source_flag, target) VALUES ('old-run', %s, 'u-1', 603,"
            " 20261120, %s, 's-1', 'pandas', 'poster')",
            (r, T0),
        )
    upgrade(empty_pg_dsn, "head")
    pg = PostgresSettings(dsn=empty_pg_dsn)  # type: ignore[arg-type]
    with psycopg.connect(empty_pg_dsn) as conn:
        assert conn.execute(
            "SELECT event_type, payload FROM stg_user_logs WHERE event_id = %s", (x,)
        ).fetchone() == ("watch", None)
        assert conn.execute(
            "SELECT event_type FROM fallback.stg_user_logs WHERE run_id = 'old-run'"
        ).fetchall() == [("click",)]
    # the same content (the payload cannot be compared): a resend; another type: a conflict
    _spark(pg, [_row(x, "watch", 3, payload={"position_seconds": 1, "duration_seconds": 9})])
    assert _held(pg) == []
    _spark(pg, [_row(x, "click", 4)])
    assert _facts(pg, x) == [("fact_watch", "pandas")]
    assert [(h[0], h[3]) for h in _held(pg)] == [(x, EVENT_ID_CONFLICT)]
    with psycopg.connect(empty_pg_dsn) as conn:
        promoted = promote_run(conn, "old-run")
    assert promoted["fact_click"] == {"inserted": 1, "present": 0}
    assert _facts(pg, r) == [("fact_click", "pandas")]
