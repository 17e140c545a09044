"""One aggregates run at a time: the PostgreSQL advisory lock of
:mod:`cinepulse_spark_jobs.aggregates`, with two concurrent holders on the live PostgreSQL.

The runs below aggregate no day (``changed_dates`` is held open, then returns nothing), so
no Spark session is needed: what is under test is the lock around the whole run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_spark_jobs import aggregates
from cinepulse_spark_jobs.aggregates import AggregatesLocked, acquire_lock, run_aggregates
from cinepulse_spark_jobs.settings import SparkJobsSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(pg_settings: PostgresSettings, tmp_path: Path) -> SparkJobsSettings:
    return SparkJobsSettings(postgres=pg_settings, checkpoint_dir=tmp_path / "checkpoints")


def runs(pg_settings: PostgresSettings) -> list[tuple[Any, ...]]:
    with connect(pg_settings, autocommit=True) as conn:
        return conn.execute(
            "SELECT status, error FROM agg_runs WHERE job = %s ORDER BY run_id",
            (aggregates.JOB,),
        ).fetchall()


def test_a_second_run_exits_while_the_first_holds_the_lock(
    settings: SparkJobsSettings, pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = threading.Event()
    release = threading.Event()

    def slow_changed_dates(*args: Any) -> list[int]:
        inside.set()
        assert release.wait(30)
        return []

    monkeypatch.setattr(aggregates, "changed_dates", slow_changed_dates)
    outcome: dict[str, Any] = {}

    def first() -> None:
        outcome["first"] = run_aggregates(None, settings)  # type: ignore[arg-type]

    t = threading.Thread(target=first)
    t.start()
    try:
        assert inside.wait(30)
        with connect(pg_settings, autocommit=True) as conn:
            # only this job's lock (a bigint key: classid = high 32 bits, objid = low 32,
            # objsubid 1): other sessions' advisory locks must not count
            holder = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = %s AND objid = %s AND objsubid = 1",
                ((aggregates.LOCK_KEY >> 32) & 0xFFFFFFFF, aggregates.LOCK_KEY & 0xFFFFFFFF),
            ).fetchall()
        assert len(holder) == 1
        started = time.monotonic()
        with pytest.raises(AggregatesLocked) as caught:
            run_aggregates(None, settings)  # type: ignore[arg-type]
        assert time.monotonic() - started < 5  # lock_wait_s 0: at once
        message = str(caught.value)
        assert "another daily_aggregates run holds the lock" in message
        assert f"backend pid {holder[0][0]}" in message
        # the refused run left no trace: only the first is recorded, still running
        assert runs(pg_settings) == [("running", None)]
    finally:
        release.set()
        t.join(30)
    assert outcome["first"].dates == 0
    assert runs(pg_settings) == [("succeeded", None)]
    # released: the next run goes ahead
    monkeypatch.setattr(aggregates, "changed_dates", lambda *args: [])
    assert run_aggregates(None, settings).dates == 0  # type: ignore[arg-type]
    assert runs(pg_settings) == [("succeeded", None), ("succeeded", None)]


def test_a_run_that_waits_takes_the_lock_when_the_holder_ends(
    pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregates, "LOCK_POLL_S", 0.05)
    with connect(pg_settings, autocommit=True) as holder:
        acquire_lock(holder)
        with connect(pg_settings, autocommit=True) as second:
            started = time.monotonic()
            with pytest.raises(AggregatesLocked, match=r"waited 0.5s"):
                acquire_lock(second, wait_s=0.5)
            assert 0.5 <= time.monotonic() - started < 5

            timer = threading.Timer(1.0, holder.close)  # the holder's session ends
            timer.start()
            started = time.monotonic()
            acquire_lock(second, wait_s=30)
            assert 0.8 < time.monotonic() - started < 10
            timer.join()


def test_a_failed_run_releases_the_lock(
    settings: SparkJobsSettings, pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> list[int]:
        raise RuntimeError("facts unreadable")

    monkeypatch.setattr(aggregates, "changed_dates", broken)
    with pytest.raises(RuntimeError, match="facts unreadable"):
        run_aggregates(None, settings)  # type: ignore[arg-type]
    with connect(pg_settings, autocommit=True) as conn:
        acquire_lock(conn)  # free again
    assert runs(pg_settings) == [("failed", "facts unreadable")]


def test_the_command_exits_3_with_a_message(
    pg_settings: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from cinepulse_spark_jobs import __main__ as cli
    from cinepulse_spark_jobs import session

    stub = SimpleNamespace(
        sparkContext=SimpleNamespace(setLogLevel=lambda level: None), stop=lambda: None
    )
    monkeypatch.setattr(session, "make_spark", lambda *args: stub)
    monkeypatch.setenv("CINEPULSE_POSTGRES__DSN", pg_settings.dsn.get_secret_value())
    monkeypatch.setenv("CINEPULSE_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    with connect(pg_settings, autocommit=True) as holder:
        acquire_lock(holder)
        code = cli.main(["aggregate", "--lock-wait", "0.2"])
    assert code == aggregates.EXIT_LOCKED == 3
    err = capsys.readouterr().err
    assert "cinepulse-spark-jobs aggregate: another daily_aggregates run holds the lock" in err
    assert runs(pg_settings) == []
