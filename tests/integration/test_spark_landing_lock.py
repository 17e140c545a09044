"""Two Spark drivers and the events query's landing tables: the second waits for the first's
landing and load (the advisory lock), against the live PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from cinepulse_common.postgres import connect
from cinepulse_common.settings import PostgresSettings
from cinepulse_spark_jobs import stream
from cinepulse_spark_jobs.stream import LANDING, LandingLockLost, landing_lock

pytestmark = pytest.mark.integration


def test_a_second_driver_waits_for_the_landing_lock(
    pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "LANDING_LOCK_POLL_S", 0.05)
    events: list[str] = []
    first_holds = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with landing_lock(pg_settings, LANDING):
            events.append("first acquired")
            first_holds.set()
            release_first.wait(10)
            events.append("first released")

    def second() -> None:
        with landing_lock(pg_settings, LANDING):
            events.append("second acquired")

    t1 = threading.Thread(target=first)
    t1.start()
    assert first_holds.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    time.sleep(1.0)
    assert events == ["first acquired"], "the second driver did not wait"
    assert t2.is_alive()
    release_first.set()
    t1.join(10)
    t2.join(10)
    assert events == ["first acquired", "first released", "second acquired"]


def test_other_landing_tables_do_not_wait(pg_settings: PostgresSettings) -> None:
    with landing_lock(pg_settings, LANDING):
        done = threading.Event()

        def other() -> None:
            with landing_lock(pg_settings, "another_batch"):
                done.set()

        t = threading.Thread(target=other)
        t.start()
        assert done.wait(5)
        t.join(5)


def test_a_driver_that_dies_releases_the_lock(pg_settings: PostgresSettings) -> None:
    with pytest.raises(RuntimeError), landing_lock(pg_settings, LANDING):
        raise RuntimeError("the batch failed")
    acquired = threading.Event()

    def again() -> None:
        with landing_lock(pg_settings, LANDING):
            acquired.set()

    t = threading.Thread(target=again)
    t.start()
    assert acquired.wait(5)
    t.join(5)


def test_a_dropped_lock_connection_fails_the_check(pg_settings: PostgresSettings) -> None:
    with connect(pg_settings, autocommit=True) as conn:
        with landing_lock(pg_settings, LANDING) as lock:
            lock.check(conn)  # held by its connection
            conn.execute("SELECT pg_terminate_backend(%s)", (lock.pid,))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the backend exits asynchronously
                try:
                    lock.check(conn)
                except LandingLockLost:
                    break
                time.sleep(0.05)
            with pytest.raises(LandingLockLost, match="landing lock of 'spark_batch' was lost"):
                lock.check(conn)
        # leaving the block with the connection gone raised nothing: the lock is free
        with landing_lock(pg_settings, LANDING) as again:
            again.check(conn)
