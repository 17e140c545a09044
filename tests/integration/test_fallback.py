"""The pandas fallback with the real MongoDB-protocol server and PostgreSQL: a run from the
archiver's documents into the fallback schema, promotion (dry run, once, twice), replay into
the main tables, a failure injected mid-run, chunking, and the CLI's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cinepulse_archiver.documents import Source, to_document
from cinepulse_common.mongo import make_client
from cinepulse_common.postgres import connect
from cinepulse_common.rules import active_rules
from cinepulse_common.settings import MongoSettings, PostgresSettings
from cinepulse_common.warehouse import FACT_TABLE, load_events
from tests.factories import event
from tests.integration.parity_corpus import TOPIC_OF
from tests.integration.services import service_env

pytestmark = pytest.mark.integration

FACTS = tuple(FACT_TABLE.values())
ARRIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
#: an occurred_at 300 days ago, sent without received_at (so neither late nor checked
#: against the fixed ARRIVED): within the rules' bounded past whenever the test runs
EARLIER = (datetime.now(UTC) - timedelta(days=300)).replace(microsecond=0)
WINDOW = (ARRIVED - timedelta(hours=1), ARRIVED + timedelta(hours=1))


def _archive(
    mongo: MongoSettings,
    records: list[dict[str, Any]],
    received_at: datetime = ARRIVED,
    partitions: int = 1,
    start: int = 0,
) -> None:
    """The records as the archiver stores them (positions in production order)."""
    offsets: Counter[tuple[str, int]] = Counter()
    docs = []
    for i, record in enumerate(records):
        topic = "t." + TOPIC_OF.get(str(record.get("event_type")), "user_click_log")
        partition = i % partitions
        offset = start + offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        source = Source(topic, partition, offset, b"k", None)
        docs.append(
            to_document(source, json.dumps(record).encode(), received_at, movie_topic=False)[1]
        )
    with make_client(mongo) as client:
        client[mongo.database]["user_logs"].insert_many(docs)


def _settings(pg: PostgresSettings, mongo: MongoSettings, **extra: Any) -> Any:
    from cinepulse_pandas_fallback.settings import PandasFallbackSettings

    return PandasFallbackSettings(postgres=pg, mongo=mongo, **extra)


def _run(pg: PostgresSettings, mongo: MongoSettings, kind: str = "fallback", **kw: Any) -> Any:
    from cinepulse_pandas_fallback.job import run_window

    return run_window(_settings(pg, mongo), active_rules(), *WINDOW, kind=kind, progress=None, **kw)


def _one(pg: PostgresSettings, query: str, *args: Any) -> Any:
    with connect(pg) as conn:
        return conn.execute(query, args).fetchone()


def _count(pg: PostgresSettings, table: str, where: str = "TRUE", *args: Any) -> int:
    return int(_one(pg, f"SELECT count(*) FROM {table} WHERE {where}", *args)[0])


def _sample() -> dict[str, dict[str, Any]]:
    occurred = (ARRIVED - timedelta(minutes=5)).isoformat()
    received = {"received_at": (ARRIVED - timedelta(minutes=5, seconds=-1)).isoformat()}
    return {
        "watch": event(
            "watch",
            occurred_at=occurred,
            payload={"position_seconds": 4861.235, "duration_seconds": 5400},
            **received,
        ),
        "rate": event(
            "rate", occurred_at=occurred, payload={"rating": 3.5}, user_id="critic", **received
        ),
        "comment": event(
            "comment",
            occurred_at=occurred,
            payload={"text": "  What a  wonderful,\n joyful film!  "},
            **received,
        ),
        "click": event("click", occurred_at=occurred, payload={"target": "thumbnail"}, **received),
        "legacy": event(
            "view",
            occurred_at=occurred,
            payload={"position_seconds": 60, "duration_seconds": 600},
            **received,
        ),
        "late": event(
            "click",
            occurred_at="2026-11-19T10:00:00+00:00",
            received_at="2026-11-20T11:00:00+00:00",
            user_id="late-user",
        ),
        # the critic's first rating: older, within the rules' bounded past (400 days)
        "old": event("rate", occurred_at=EARLIER.isoformat(), user_id="critic"),
        "bad": event("rate", occurred_at=occurred, payload={"rating": 4.3}, **received),
    }


def test_a_run_writes_the_fallback_schema_only_with_the_right_values(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    from cinepulse_emotion import EMOTIONS

    sample = _sample()
    _archive(mongo_settings, [*sample.values(), sample["rate"]])  # and a resend
    # arrived outside the window: not read
    _archive(mongo_settings, [event("rate")], received_at=ARRIVED + timedelta(hours=2), start=100)
    summary = _run(pg_settings, mongo_settings)

    assert summary.status == "succeeded" and summary.events_read == 9 and summary.late == 1
    run = summary.run_id
    assert _one(
        pg_settings, "SELECT status, kind, events_read FROM fallback.runs WHERE run_id = %s", run
    ) == ("succeeded", "fallback", 9)
    assert {t: _count(pg_settings, f"fallback.{t}", "run_id = %s", run) for t in FACTS} == {
        "fact_watch": 2,
        "fact_rating": 2,
        "fact_comment": 1,
        "fact_click": 2,
    }
    assert all(_count(pg_settings, f"public.{t}") == 0 for t in FACTS)
    assert _count(pg_settings, "stg_user_logs") == 0 and _count(pg_settings, "dim_user") == 0
    assert _one(
        pg_settings,
        "SELECT position_seconds::text, duration_seconds::text, completion_ratio::text,"
        " completed, date_key, source_flag FROM fallback.fact_watch WHERE event_id = %s",
        sample["watch"]["event_id"],
    ) == ("4861.24", "5400.00", "0.9002", True, 20261120, "pandas")
    assert _one(
        pg_settings,
        "SELECT rating::text FROM fallback.fact_rating WHERE event_id = %s",
        sample["rate"]["event_id"],
    ) == ("3.5",)
    assert _one(
        pg_settings,
        "SELECT target FROM fallback.fact_click WHERE event_id = %s",
        sample["click"]["event_id"],
    ) == ("poster",)
    assert _one(
        pg_settings,
        "SELECT completion_ratio::text FROM fallback.fact_watch WHERE event_id = %s",
        sample["legacy"]["event_id"],
    ) == ("0.1000",)
    text, emotion, sentiment, scores, version = _one(
        pg_settings,
        "SELECT comment_text, emotion, sentiment, emotion_scores, classifier_version"
        " FROM fallback.fact_comment WHERE event_id = %s",
        sample["comment"]["event_id"],
    )
    assert text == "What a wonderful, joyful film!"
    assert emotion == "joy" and sentiment > 0 and version and set(scores) == set(EMOTIONS)
    assert _one(
        pg_settings,
        "SELECT rule, reason, source_flag FROM fallback.quarantine WHERE run_id = %s",
        run,
    ) == ("rating", "rating must be 0.5 to 5.0 in steps of 0.5", "pandas")
    assert json.loads(json.dumps(summary.as_dict()))["rows"]["fact_watch"] == 2


def test_promotion_dry_run_then_once_then_again(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    from cinepulse_pandas_fallback.runs import NotPromotable, RunNotFound, promote

    sample = _sample()
    _archive(mongo_settings, list(sample.values()))
    run = _run(pg_settings, mongo_settings).run_id
    # Spark had already written the rating, with another value: Spark's stays
    spark_rating = sample["rate"]
    with connect(pg_settings) as conn:
        load_events(
            conn,
            [
                (
                    spark_rating["event_id"],
                    "rate",
                    "critic",
                    603,
                    20261120,
                    ARRIVED,
                    ARRIVED,
                    None,
                    "t.user_rating_log",
                    0,
                    1,
                    "{}",
                    None,
                    None,
                    None,
                    None,
                    4.0,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            ],
            source_flag="spark",
        )

    def snapshot() -> dict[str, Any]:
        return {
            t: _count(pg_settings, t)
            for t in (*FACTS, "dim_user", "dim_date", "quarantine", "fallback.promotions")
        } | {"status": _one(pg_settings, "SELECT status FROM fallback.runs WHERE run_id = %s", run)}

    before = snapshot()
    dry = promote(pg_settings, run, by="ada", dry_run=True)
    assert snapshot() == before  # a dry run changes nothing, and is not recorded
    assert dry.rows["fact_rating"] == {"inserted": 1, "present": 1}
    assert dry.rows["fact_watch"] == {"inserted": 2, "present": 0}
    assert dry.rows["quarantine"] == {"inserted": 1, "present": 0}
    assert dry.rows["dim_user"]["inserted"] >= 2  # new users, and critic seen earlier
    assert "would insert" in dry.table()

    done = promote(pg_settings, run, by="ada")
    assert {t: c["inserted"] for t, c in done.rows.items()} == {
        t: c["inserted"] for t, c in dry.rows.items()
    }
    assert _one(
        pg_settings,
        "SELECT rating::text, source_flag FROM fact_rating WHERE event_id = %s",
        spark_rating["event_id"],
    ) == ("4.0", "spark")
    assert _one(
        pg_settings,
        "SELECT source_flag FROM fact_watch WHERE event_id = %s",
        sample["watch"]["event_id"],
    ) == ("pandas",)
    assert (
        _one(pg_settings, "SELECT first_seen_at FROM dim_user WHERE user_id = 'critic'")[0]
        == EARLIER
    )
    assert _one(pg_settings, "SELECT status FROM fallback.runs WHERE run_id = %s", run) == (
        "promoted",
    )
    by, at, inserted, present = _one(
        pg_settings,
        "SELECT promoted_by, promoted_at, rows_inserted, rows_present FROM fallback.promotions"
        " WHERE run_id = %s",
        run,
    )
    assert by == "ada" and at is not None and done.promoted_at == at
    assert inserted["fact_watch"] == 2 and present["fact_rating"] == 1
    after = snapshot()

    again = promote(pg_settings, run, by="grace")
    assert all(again.rows[t]["inserted"] == 0 for t in (*FACTS, "quarantine", "dim_user"))
    assert snapshot() | {"fallback.promotions": 1} == after
    assert _count(pg_settings, "fallback.promotions", "run_id = %s", run) == 2

    with pytest.raises(RunNotFound):
        promote(pg_settings, "fallback-nope", by="ada")
    with connect(pg_settings) as conn:
        conn.execute(
            "INSERT INTO fallback.runs (run_id, window_start, window_end, status)"
            " VALUES ('broken', now() - interval '1 hour', now(), 'failed')"
        )
    with pytest.raises(NotPromotable, match="only a succeeded run"):
        promote(pg_settings, "broken", by="ada")


def test_replay_fills_the_main_tables_once(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    sample = _sample()
    _archive(mongo_settings, list(sample.values()))
    first = _run(pg_settings, mongo_settings, kind="replay")
    counts = {
        t: _count(pg_settings, t) for t in (*FACTS, "stg_user_logs", "dim_user", "quarantine")
    }
    assert counts == {
        "fact_watch": 2,
        "fact_rating": 2,
        "fact_comment": 1,
        "fact_click": 2,
        "stg_user_logs": 7,
        "dim_user": 3,
        "quarantine": 1,
    }
    assert _one(pg_settings, "SELECT DISTINCT source_flag FROM fact_click") == ("replay",)
    assert all(_count(pg_settings, f"fallback.{t}") == 0 for t in FACTS)
    assert first.written["fact_watch"] == 2

    second = _run(pg_settings, mongo_settings, kind="replay")
    assert second.status == "succeeded"
    assert sum(n for t, n in second.written.items() if not t.startswith("dim_")) == 0
    assert counts == {t: _count(pg_settings, t) for t in counts}
    assert _one(
        pg_settings,
        "SELECT count(*) FROM fallback.runs WHERE kind = 'replay' AND status = 'succeeded'",
    ) == (2,)


def test_a_failure_mid_run_leaves_nothing_visible_and_a_rerun_succeeds(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import AutoReconnect

    from cinepulse_pandas_fallback import job
    from cinepulse_pandas_fallback.job import RunFailed

    _archive(
        mongo_settings,
        [
            event(t, user_id=f"u{i}")
            for i, t in enumerate(["rate", "watch", "comment", "click"] * 10)
        ],
        partitions=2,
    )

    # the loader fails on the second chunk (after the first one was written)
    real_load = job.load_events
    calls = []

    def failing_load(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected: PostgreSQL went away")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(job, "load_events", failing_load)
    with pytest.raises(RunFailed) as failed:
        _run(pg_settings, mongo_settings, chunk_size=10)
    run = failed.value.summary.run_id
    assert failed.value.summary.chunks == 2
    status, error = _one(
        pg_settings, "SELECT status, error FROM fallback.runs WHERE run_id = %s", run
    )
    assert status == "failed" and "injected" in error
    assert sum(_count(pg_settings, f"fallback.{t}") for t in (*FACTS, "quarantine")) == 0
    monkeypatch.undo()

    # the MongoDB cursor dies after the first chunk
    real_chunks = job.read_chunks

    def dying_chunks(*args: Any) -> Any:
        chunks = real_chunks(*args)
        yield next(chunks)
        raise AutoReconnect("injected: connection closed")

    monkeypatch.setattr(job, "read_chunks", dying_chunks)
    with pytest.raises(RunFailed):
        _run(pg_settings, mongo_settings, chunk_size=10)
    assert sum(_count(pg_settings, f"fallback.{t}") for t in (*FACTS, "quarantine")) == 0
    monkeypatch.undo()

    rerun = _run(pg_settings, mongo_settings, chunk_size=10)
    assert rerun.status == "succeeded" and rerun.chunks == 4
    assert (
        sum(_count(pg_settings, f"fallback.{t}", "run_id = %s", rerun.run_id) for t in FACTS) == 40
    )
    assert _one(pg_settings, "SELECT array_agg(status ORDER BY started_at) FROM fallback.runs") == (
        ["failed", "failed", "succeeded"],
    )


def test_a_tiny_chunk_size_gives_the_same_run_as_one_chunk(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    from tests.integration.parity_corpus import corpus

    def as_object(value: bytes) -> Any:
        try:
            return json.loads(value)
        except ValueError:
            return None

    records = [r for _, v in corpus(seed=7, n_valid=300) if isinstance(r := as_object(v), dict)]
    _archive(mongo_settings, records, partitions=3)
    whole = _run(pg_settings, mongo_settings, chunk_size=100_000)
    tiny = _run(pg_settings, mongo_settings, chunk_size=7)
    assert whole.chunks == 1 and tiny.chunks > 50

    def contents(run_id: str) -> dict[str, list[Any]]:
        with connect(pg_settings) as conn:
            out = {}
            for table in (*FACTS, "quarantine"):
                rows = conn.execute(
                    f"SELECT to_jsonb(t) - 'run_id' - 'ingested_at' - 'quarantine_id'"
                    f" - 'quarantined_at' FROM fallback.{table} AS t WHERE run_id = %s",
                    (run_id,),
                ).fetchall()
                out[table] = sorted(json.dumps(r[0], sort_keys=True) for r in rows)
            return out

    a, b = contents(whole.run_id), contents(tiny.run_id)
    assert all(a[t] for t in a)
    assert a == b
    assert whole.written == tiny.written and whole.quarantined == tiny.quarantined


def _cli(
    pg_dsn: str, mongo_url: str, database: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = service_env(
        CINEPULSE_POSTGRES__DSN=pg_dsn,
        CINEPULSE_MONGO__URL=mongo_url,
        CINEPULSE_MONGO__DATABASE=database,
        CINEPULSE_MONGO__SERVER_SELECTION_TIMEOUT_MS="1000",
        CINEPULSE_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "cinepulse_pandas_fallback", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_line(pg_settings: PostgresSettings, mongo_settings: MongoSettings) -> None:
    dsn, url = pg_settings.dsn.get_secret_value(), mongo_settings.url.get_secret_value()
    db = mongo_settings.database
    _archive(mongo_settings, list(_sample().values()))
    window = ["--from", WINDOW[0].isoformat(), "--to", WINDOW[1].isoformat()]

    done = _cli(dsn, url, db, "run", *window, "--chunk-size", "3", "--by", "airflow")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["events_read"] == 8
    assert summary["chunks"] == 3 and "events read" in done.stderr
    run = summary["run_id"]

    dry = _cli(dsn, url, db, "promote", run, "--dry-run")
    assert dry.returncode == 0 and "would insert" in dry.stderr
    assert json.loads(dry.stdout)["rows"]["fact_watch"] == {"inserted": 2, "present": 0}
    promoted = _cli(dsn, url, db, "promote", run, "--by", "ada")
    assert promoted.returncode == 0 and json.loads(promoted.stdout)["promoted_by"] == "ada"
    listed = [json.loads(line) for line in _cli(dsn, url, db, "runs").stdout.splitlines()]
    assert listed[0]["run_id"] == run and listed[0]["status"] == "promoted"
    assert listed[0]["requested_by"] == "airflow" and listed[0]["promotions"][0]["by"] == "ada"

    unknown = _cli(dsn, url, db, "promote", "fallback-nope")
    assert unknown.returncode == 3 and "no fallback run" in unknown.stderr
    bad = _cli(dsn, url, db, "run", "--from", "yesterday", "--to", WINDOW[1].isoformat())
    assert bad.returncode == 2 and "not an ISO 8601" in bad.stderr
    backwards = _cli(
        dsn, url, db, "replay", "--from", WINDOW[1].isoformat(), "--to", WINDOW[0].isoformat()
    )
    assert backwards.returncode == 2 and "is not before" in backwards.stderr
    no_pg = _cli("postgresql://nobody@127.0.0.1:1/none", url, db, "runs")
    assert no_pg.returncode == 4 and "PostgreSQL unreachable" in no_pg.stderr
    no_mongo = _cli(dsn, "mongodb://127.0.0.1:1/", db, "run", *window)
    assert no_mongo.returncode == 4 and "MongoDB unreachable" in no_mongo.stderr


def test_a_run_whose_process_died_is_marked_failed(
    pg_settings: PostgresSettings, mongo_settings: MongoSettings
) -> None:
    dsn, url = pg_settings.dsn.get_secret_value(), mongo_settings.url.get_secret_value()
    with connect(pg_settings) as conn:
        for run_id, hours in (("fallback-dead", 7), ("fallback-busy", 1)):
            conn.execute(
                "INSERT INTO fallback.runs (run_id, window_start, window_end, status, started_at)"
                " VALUES (%s, %s, %s, 'running', now() - make_interval(hours => %s))",
                (run_id, WINDOW[0], WINDOW[1], hours),
            )
    listed = _cli(dsn, url, mongo_settings.database, "runs")
    assert listed.returncode == 0 and "fallback-dead was abandoned" in listed.stderr
    runs = {r["run_id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert runs["fallback-dead"]["status"] == "failed"
    assert runs["fallback-dead"]["error"].startswith("abandoned")
    assert runs["fallback-busy"]["status"] == "running"  # within the default 6 hours
